<?php
/*
 * The Partner Order API through PHP's SoapClient, as an integrator writes it.
 *
 * Reads one JSON job on stdin, prints one JSON report on stdout (see README.md):
 *
 *   job    {"wsdl": URL, "location": URL, "features": ["SOAP_SINGLE_ELEMENT_ARRAYS"] | [],
 *           "partner": {"code", "username", "password"},
 *           "calls": [{"name", "operation", "input"?, "order"?, "csr"?, "password"?,
 *                      "dns_names"?, "options"?, "soap_action"?, "optional_nulls"?,
 *                      "serial"?, "certificate"?, "reason"?, "from"?, "to"?, "page_size"?}]}
 *   report {"client", "features", "load_error", "functions", "operations", "warnings",
 *           "calls": {name: {"status", "result" | "fault", "request"}}}
 *
 * "result" is the operation's answer exactly as SoapClient gives it (stdClass objects,
 * arrays, PHP ints and strings), json_encode()d: a one-item list that PHP turned into a
 * plain object shows up as a JSON object, not a list.
 */

declare(strict_types=1);

ini_set('display_errors', 'stderr');
ini_set('default_socket_timeout', '30');

$warnings = [];
set_error_handler(function (int $level, string $message, string $file = '', int $line = 0) use (&$warnings): bool {
    $warnings[] = "$message ($file:$line)";
    return true;
});

/** SoapClient that can send another SOAPAction than the WSDL's (to provoke a fault on purpose). */
final class OrderClient extends SoapClient
{
    public ?string $forcedAction = null;

    public function __doRequest($request, $location, $action, $version, $oneWay = false): ?string
    {
        return parent::__doRequest($request, $location, $this->forcedAction ?? $action, $version, $oneWay);
    }
}

function auth_token(array $job, array $call): array
{
    return [
        'UserName' => $job['partner']['username'],
        'Password' => $call['password'] ?? $job['partner']['password'],
    ];
}

function order_request(array $job, array $call): array
{
    $parameters = ['CSR' => $call['csr']];
    if (isset($call['dns_names'])) {
        $parameters['DNSNames'] = ['DNSName' => $call['dns_names']];
    }
    $request = [
        'OrderRequestHeader' => [
            'PartnerCode' => $job['partner']['code'],
            'AuthToken' => auth_token($job, $call),
            'PartnerOrderID' => $call['order'],
        ],
        'OrderParameters' => $parameters,
    ];
    if (!empty($call['optional_nulls'])) {  // every optional element given as null
        $request['OrderRequestHeader']['ReplayToken'] = null;
        $request['OrderParameters'] += ['DNSNames' => null, 'SignatureHashAlgorithm' => null];
        $request['ReissueEmail'] = null;
    }
    return $request;
}

function query_header(array $job, array $call): array
{
    return ['PartnerCode' => $job['partner']['code'], 'AuthToken' => auth_token($job, $call)];
}

function invoke(OrderClient $client, array $job, array $call): object
{
    switch ($call['operation']) {
        case 'Hello':
            return $client->Hello(['Input' => $call['input']]);
        case 'Reissue':
            return $client->Reissue(['Request' => order_request($job, $call)]);
        case 'ValidateOrderParameters':
            return $client->ValidateOrderParameters(['Request' => order_request($job, $call)]);
        case 'ParseCSR':
            return $client->ParseCSR(['Request' => ['QueryRequestHeader' => query_header($job, $call), 'CSR' => $call['csr']]]);
        case 'GetOrderByPartnerOrderID':
            $request = ['QueryRequestHeader' => query_header($job, $call), 'PartnerOrderID' => $call['order']];
            if (isset($call['options'])) {
                $request['OrderQueryOptions'] = $call['options'];
            }
            return $client->GetOrderByPartnerOrderID(['Request' => $request]);
        case 'Revoke':
            $header = ['PartnerCode' => $job['partner']['code'], 'AuthToken' => auth_token($job, $call)];
            if (isset($call['order'])) {
                $header['PartnerOrderID'] = $call['order'];
            }
            $request = ['OrderRequestHeader' => $header];
            if (isset($call['certificate'])) {
                $request['Certificate'] = $call['certificate'];
            }
            if (isset($call['serial'])) {
                $request['SerialNumber'] = $call['serial'];
            }
            $request['RevokeReason'] = $call['reason'];
            return $client->Revoke(['Request' => $request]);
        case 'GetModifiedOrders':
            $request = ['QueryRequestHeader' => query_header($job, $call), 'FromDate' => $call['from'],
                        'ToDate' => $call['to']];
            if (isset($call['page_size'])) {
                $request['PageSize'] = $call['page_size'];
            }
            return $client->GetModifiedOrders(['Request' => $request]);
    }
    throw new InvalidArgumentException('unknown operation ' . $call['operation']);
}

function http_status(?string $headers): ?int
{
    if ($headers !== null && preg_match('#^HTTP/\S+\s+(\d{3})#', $headers, $match)) {
        return (int) $match[1];
    }
    return null;
}

$job = json_decode((string) stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);
$features = 0;
foreach ($job['features'] ?? [] as $feature) {
    $features |= constant($feature);
}
$report = [
    'client' => 'PHP ' . PHP_VERSION . ' ext-soap ' . phpversion('soap'),
    'features' => $features,
    'load_error' => null,
    'functions' => [],
    'operations' => [],
    'warnings' => [],
    'calls' => [],
];

try {
    $client = new OrderClient($job['wsdl'], [
        'location' => $job['location'],
        'features' => $features,
        'cache_wsdl' => WSDL_CACHE_NONE,
        'exceptions' => true,
        'trace' => true,
        'connection_timeout' => 10,
    ]);
} catch (Throwable $error) {
    $report['load_error'] = get_class($error) . ': ' . $error->getMessage();
    $client = null;
}

if ($client !== null) {
    $report['functions'] = $client->__getFunctions();
    foreach ($report['functions'] as $signature) {
        if (preg_match('/^\S+\s+(\w+)\(/', $signature, $match)) {
            $report['operations'][] = $match[1];
        }
    }
    foreach ($job['calls'] as $call) {
        $client->forcedAction = $call['soap_action'] ?? null;
        try {
            $outcome = ['result' => invoke($client, $job, $call)];
        } catch (SoapFault $fault) {
            $outcome = ['fault' => ['code' => $fault->faultcode, 'string' => $fault->faultstring,
                                    'detail' => $fault->detail ?? null]];
        }
        $report['calls'][$call['name']] = ['status' => http_status($client->__getLastResponseHeaders())]
            + $outcome + ['request' => $client->__getLastRequest()];
    }
}

$report['warnings'] = $warnings;
echo json_encode($report, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR), "\n";
