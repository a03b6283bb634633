#!/usr/bin/env node
/*
 * The Partner Order API through node-soap (the `soap` package), as an integrator writes it.
 *
 * Reads one JSON job on stdin, prints one JSON report on stdout (see README.md):
 *
 *   job    {"wsdl": URL, "location": URL,
 *           "partner": {"code", "username", "password"},
 *           "calls": [{"name", "operation", "input"?, "order"?, "csr"?, "password"?,
 *                      "dns_names"?, "options"?, "soap_action"?, "optional_nulls"?,
 *                      "serial"?, "certificate"?, "reason"?, "from"?, "to"?, "page_size"?, "as_date"?}]}
 *   report {"client", "load_error", "operations", "warnings",
 *           "calls": {name: {"status", "result", "dates", "request"} | {"status", "fault", "request"}}}
 *
 * "result" is the operation's answer exactly as node-soap gives it, JSON-encoded; the
 * values node-soap turned into Date objects are listed by path in "dates" (JSON would
 * otherwise hide that they were not strings).
 */

'use strict';

const soap = require('soap');
const soapVersion = require('soap/package.json').version;

const CALL_TIMEOUT_MS = 30000;

const warnings = [];
process.on('warning', (warning) => warnings.push(`${warning.name}: ${warning.message}`));

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on('data', (chunk) => chunks.push(chunk));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

function authToken(job, call) {
  return { UserName: job.partner.username, Password: call.password ?? job.partner.password };
}

function orderRequest(job, call) {
  const parameters = { CSR: call.csr };
  if (call.dns_names) {
    parameters.DNSNames = { DNSName: call.dns_names };
  }
  const request = {
    OrderRequestHeader: {
      PartnerCode: job.partner.code,
      AuthToken: authToken(job, call),
      PartnerOrderID: call.order,
    },
    OrderParameters: parameters,
  };
  if (call.optional_nulls) { // every optional element given as null
    request.OrderRequestHeader.ReplayToken = null;
    parameters.DNSNames ??= null;
    parameters.SignatureHashAlgorithm = null;
    request.ReissueEmail = null;
  }
  return request;
}

function queryHeader(job, call) {
  return { PartnerCode: job.partner.code, AuthToken: authToken(job, call) };
}

function argumentsOf(job, call) {
  switch (call.operation) {
    case 'Hello':
      return { Input: call.input };
    case 'Reissue':
    case 'ValidateOrderParameters':
      return { Request: orderRequest(job, call) };
    case 'ParseCSR':
      return { Request: { QueryRequestHeader: queryHeader(job, call), CSR: call.csr } };
    case 'GetOrderByPartnerOrderID': {
      const request = { QueryRequestHeader: queryHeader(job, call), PartnerOrderID: call.order };
      if (call.options) {
        request.OrderQueryOptions = call.options;
      }
      return { Request: request };
    }
    case 'Revoke': {
      // Keys in the schema's order; an optional element left out is a key left out (never null).
      const header = { PartnerCode: job.partner.code, AuthToken: authToken(job, call) };
      if (call.order) {
        header.PartnerOrderID = call.order;
      }
      const request = { OrderRequestHeader: header };
      if (call.certificate) {
        request.Certificate = call.certificate;
      }
      if (call.serial) {
        request.SerialNumber = call.serial;
      }
      request.RevokeReason = call.reason;
      return { Request: request };
    }
    case 'GetModifiedOrders': {
      // ISO 8601 strings with their zone; "as_date": JavaScript Date objects (which node-soap sends empty).
      const date = (text) => (call.as_date ? new Date(text) : text);
      const request = { QueryRequestHeader: queryHeader(job, call), FromDate: date(call.from), ToDate: date(call.to) };
      if (call.page_size) {
        request.PageSize = call.page_size;
      }
      return { Request: request };
    }
    default:
      throw new Error(`unknown operation ${call.operation}`);
  }
}

/** The value with every Date replaced by its ISO string; the Dates' paths pushed on `dates`. */
function plain(value, path, dates) {
  if (value instanceof Date) {
    dates.push(path);
    return value.toISOString();
  }
  if (Array.isArray(value)) {
    return value.map((item, index) => plain(item, `${path}[${index}]`, dates));
  }
  if (value !== null && typeof value === 'object') {
    const copy = {};
    for (const [key, item] of Object.entries(value)) {
      copy[key] = plain(item, path ? `${path}.${key}` : key, dates);
    }
    return copy;
  }
  return value;
}

/**
 * Scenario "ws_security_digest": a WS-Security UsernameToken with a PasswordDigest instead of
 * the AuthToken, as node-soap's integrators send it (`soap.WSSecurity`, mustUnderstand="1").
 * Each call is a ParseCSR of `call.csr` whose QueryRequestHeader holds the PartnerCode alone;
 * the report gives the result and the envelope sent (the test replays it).
 */
async function wsSecurityDigest(job) {
  const report = { client: `node ${process.version} soap ${soapVersion}`, calls: {} };
  const client = await soap.createClientAsync(job.wsdl, { endpoint: job.location });
  for (const call of job.calls) {
    client.setSecurity(new soap.WSSecurity(job.partner.username, call.password ?? job.partner.password, {
      passwordType: 'PasswordDigest', mustUnderstand: true,
    }));
    const request = { QueryRequestHeader: { PartnerCode: job.partner.code }, CSR: call.csr };
    try {
      const [result] = await client.ParseCSRAsync({ Request: request }, { timeout: CALL_TIMEOUT_MS });
      report.calls[call.name] = { result: plain(result, '', []), request: client.lastRequest ?? null };
    } catch (error) {
      report.calls[call.name] = { fault: `${error.name}: ${error.message}`, request: client.lastRequest ?? null };
    }
  }
  return report;
}

async function main() {
  const job = JSON.parse(await readStdin());
  if (job.scenario === 'ws_security_digest') {
    process.stdout.write(`${JSON.stringify(await wsSecurityDigest(job), null, 2)}\n`);
    return;
  }
  const report = {
    client: `node ${process.version} soap ${soapVersion}`,
    load_error: null,
    operations: [],
    warnings,
    calls: {},
  };
  let client;
  try {
    client = await soap.createClientAsync(job.wsdl, { endpoint: job.location });
  } catch (error) {
    report.load_error = `${error.name}: ${error.message}`;
  }
  if (client) {
    const services = client.describe();
    for (const ports of Object.values(services)) {
      for (const operations of Object.values(ports)) {
        report.operations.push(...Object.keys(operations));
      }
    }
    let status = null;
    client.on('response', (_body, response) => {
      status = response ? response.status : null;
    });
    for (const call of job.calls) {
      status = null;
      const headers = call.soap_action ? { SOAPAction: `"${call.soap_action}"` } : {};
      try {
        const [result] = await client[`${call.operation}Async`](
          argumentsOf(job, call), { timeout: CALL_TIMEOUT_MS }, headers,
        );
        const dates = [];
        report.calls[call.name] = {
          status, result: plain(result, '', dates), dates, request: client.lastRequest ?? null,
        };
      } catch (error) {
        const fault = error.root && error.root.Envelope && error.root.Envelope.Body
          ? error.root.Envelope.Body.Fault : undefined;
        report.calls[call.name] = {
          status: error.response ? error.response.status : status,
          fault: fault
            ? { code: fault.faultcode, string: fault.faultstring, detail: fault.detail ?? null }
            : { code: null, string: `${error.name}: ${error.message}`, detail: null },
          request: client.lastRequest ?? null,
        };
      }
    }
  }
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
