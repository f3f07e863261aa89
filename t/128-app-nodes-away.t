use FindBin; use lib "$FindBin::Bin/lib"; use Teleclinic::Browser;
run_browser_script('app-nodes-away.mjs', nodes => 2);
