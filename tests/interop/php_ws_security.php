<?php
/*
 * WS-Security UsernameToken through PHP's SoapClient, which has no WS-Security of its own: the
 * header built by hand as docs/soap-api.md ("Authentication") shows it, a SoapHeader holding
 * a SoapVar of XSD_ANYXML (tests/test_ws_security_clients.py).
 *
 *   job    {"wsdl": URL, "location": URL, "partner": {"code", "username", "password"},
 *           "calls": [{"name", "csr", "type": "PasswordText" | "PasswordDigest", "password"?}]}
 *   report {"calls": {name: {"result" | "fault", "request"}}}
 *
 * Each call is a ParseCSR whose QueryRequestHeader holds the PartnerCode alone; a new header
 * (nonce, Created) is made before each.
 */

declare(strict_types=1);

ini_set('display_errors', 'stderr');
ini_set('default_socket_timeout', '30');

const WSSE = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd';
const WSU = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd';
const PROFILE = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0';

function security_header(string $username, string $password, string $type): SoapHeader
{
    if ($type === 'PasswordDigest') {
        $nonce = random_bytes(16);
        $created = gmdate('Y-m-d\TH:i:s\Z');
        $secret = '<wsse:Password Type="' . PROFILE . '#PasswordDigest">'
            . base64_encode(sha1($nonce . $created . $password, true)) . '</wsse:Password>'
            . '<wsse:Nonce>' . base64_encode($nonce) . '</wsse:Nonce><wsu:Created>' . $created . '</wsu:Created>';
    } else {
        $secret = '<wsse:Password Type="' . PROFILE . '#PasswordText">'
            . htmlspecialchars($password, ENT_XML1) . '</wsse:Password>';
    }
    $xml = '<wsse:Security xmlns:wsse="' . WSSE . '" xmlns:wsu="' . WSU . '"><wsse:UsernameToken>'
        . '<wsse:Username>' . htmlspecialchars($username, ENT_XML1) . '</wsse:Username>' . $secret
        . '</wsse:UsernameToken></wsse:Security>';
    return new SoapHeader(WSSE, 'Security', new SoapVar($xml, XSD_ANYXML));
}

$job = json_decode(stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);
$client = new SoapClient($job['wsdl'], ['location' => $job['location'], 'trace' => true,
    'exceptions' => true, 'cache_wsdl' => WSDL_CACHE_NONE]);
$report = ['calls' => []];
foreach ($job['calls'] as $call) {
    $client->__setSoapHeaders([security_header($job['partner']['username'],
        $call['password'] ?? $job['partner']['password'], $call['type'])]);
    try {
        $result = $client->ParseCSR(['Request' => [
            'QueryRequestHeader' => ['PartnerCode' => $job['partner']['code']], 'CSR' => $call['csr']]]);
        $report['calls'][$call['name']] = ['result' => $result, 'request' => $client->__getLastRequest()];
    } catch (SoapFault $fault) {
        $report['calls'][$call['name']] = ['fault' => $fault->getMessage(), 'request' => $client->__getLastRequest()];
    }
}
echo json_encode($report, JSON_PRETTY_PRINT | JSON_THROW_ON_ERROR), "\n";
