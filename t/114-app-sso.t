#!/usr/bin/perl

# The doctor's console behind the hospital's single sign-on: make run's
# configuration with teleclinic_doctor_identity set from a header that
# stands in for the SSO in front (as t/060 does); a doctor the SSO names
# gets the console without the password form, anyone else the form.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Teleclinic::Browser;

run_browser_script('app-sso.mjs',
                   http => 'teleclinic_doctor_identity $http_x_test_sso_user;');
