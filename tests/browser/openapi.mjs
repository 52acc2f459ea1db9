// Validates an OpenAPI document against the official OpenAPI 3.1 JSON Schema (strict), with
// @seriousme/openapi-schema-validator. Prints one JSON line: {valid, version, errors}.
//
// Usage: node openapi.mjs FILE
import { Validator } from "@seriousme/openapi-schema-validator";
import { readFileSync } from "node:fs";

const document = JSON.parse(readFileSync(process.argv[2], "utf8"));
const validator = new Validator();
const result = await validator.validate(document);
console.log(JSON.stringify({
  valid: result.valid,
  version: validator.version,
  errors: result.valid ? [] : result.errors,
}));
