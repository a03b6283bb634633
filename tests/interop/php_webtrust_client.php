<?php
/*
 * The drop-in services (/webtrust/order, /webtrust/query) through PHP's SoapClient, called with
 * the nested arrays the earlier webtrust API's PHP libraries build (every header field they
 * send, ProductCode, ApiVersion, ReplayToken and UseReplayToken included).
 *
 * Reads one JSON job on stdin:
 *   {"base": URL, "partner": {"code", "username", "password"}, "order": PartnerOrderID,
 *    "csr": PEM, "outside_csr": PEM}
 * prints one JSON report on stdout: {"functions": {"order": [...], "query": [...]},
 *   "calls": {name: {"result": ... } | {"fault": {"code", "string"}}}}
 */

declare(strict_types=1);

ini_set('display_errors', 'stderr');
ini_set('default_socket_timeout', '30');

$job = json_decode(stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);

function client(array $job, string $service): SoapClient
{
    return new SoapClient($job['base'] . "/webtrust/$service.jws?WSDL", [
        'features' => SOAP_SINGLE_ELEMENT_ARRAYS,
        'exceptions' => true,
        'cache_wsdl' => WSDL_CACHE_NONE,
        'location' => $job['base'] . "/webtrust/$service",
        'trace' => 1,
    ]);
}

function auth(array $job): array
{
    return ['UserName' => $job['partner']['username'], 'Password' => $job['partner']['password']];
}

function order_header(array $job, ?string $order): array
{
    $header = ['PartnerCode' => $job['partner']['code'], 'AuthToken' => auth($job)];
    if ($order !== null) {
        $header['PartnerOrderID'] = $order;
    }
    return $header + ['ProductCode' => 'SSL123', 'ApiVersion' => '1.0', 'ReplayToken' => 'php-' . bin2hex(random_bytes(4)),
                      'UseReplayToken' => false];
}

function query_header(array $job): array
{
    return ['PartnerCode' => $job['partner']['code'], 'AuthToken' => auth($job), 'ProductCode' => 'SSL123',
            'ApiVersion' => '1.0'];
}

function attempt(callable $call): array
{
    try {
        return ['result' => $call()];
    } catch (SoapFault $fault) {
        return ['fault' => ['code' => $fault->faultcode, 'string' => $fault->faultstring]];
    }
}

$order = client($job, 'order');
$query = client($job, 'query');
$calls = [];
$calls['hello'] = attempt(fn () => $query->hello(['Input' => 'php']));
$calls['reissue'] = attempt(fn () => $order->Reissue(['Request' => [
    'OrderRequestHeader' => order_header($job, $job['order']),
    'OrderParameters' => ['CSR' => $job['csr'], 'WebServerType' => 'apachessl', 'SignatureHashAlgorithm' => 'SHA256'],
    'ReissueEmail' => 'admin@example.com',
]])->ReissueResult);
$calls['outside'] = attempt(fn () => $order->Reissue(['Request' => [
    'OrderRequestHeader' => order_header($job, $job['order']),
    'OrderParameters' => ['CSR' => $job['outside_csr']],
]])->ReissueResult);
$calls['order'] = attempt(fn () => $query->GetOrderByPartnerOrderID(['Request' => [
    'QueryRequestHeader' => query_header($job),
    'PartnerOrderID' => $job['order'],
    'OrderQueryOptions' => ['ReturnCertificateInfo' => true, 'ReturnFulfillment' => true, 'ReturnCACerts' => true,
                            'ReturnPKCS7Cert' => true, 'ReturnCertificateHistory' => true,
                            'ReturnProductDetail' => true, 'ReturnContacts' => true],
]])->GetOrderByPartnerOrderIDResult);
$calls['modified'] = attempt(fn () => $query->GetModifiedOrders(['Request' => [
    'QueryRequestHeader' => query_header($job),
    'FromDate' => (new DateTimeImmutable('-1 day'))->format(DATE_ATOM),
    'ToDate' => (new DateTimeImmutable('+1 minute'))->format(DATE_ATOM),
    'OrderQueryOptions' => ['ReturnCertificateInfo' => true],
]])->GetModifiedOrdersResult);
$calls['status'] = attempt(fn () => $query->CheckStatus(['Request' => [
    'QueryRequestHeader' => query_header($job), 'PartnerOrderID' => $job['order'],
]])->CheckStatusResult);
$calls['fulfillment'] = attempt(fn () => $query->GetFulfillment(['Request' => [
    'QueryRequestHeader' => query_header($job), 'PartnerOrderID' => $job['order'],
    'ReturnCACerts' => true, 'ReturnPKCS7Cert' => true,
]])->GetFulfillmentResult);
$pem = $calls['reissue']['result']->Certificate->ServerCertificate ?? '';
$calls['revoke'] = attempt(fn () => $order->Revoke(['Request' => [
    'OrderRequestHeader' => order_header($job, null),
    'Certificate' => $pem,
    'RevokeReason' => 'superseded',
]])->RevokeResult);
$calls['cancel'] = attempt(fn () => $order->ModifyOrder(['Request' => [
    'OrderRequestHeader' => order_header($job, $job['order']),
    'ModifyOrderOperation' => 'CANCEL',
    'ModifyOrderReasonMessage' => 'no longer needed',
]])->ModifyOrderResult);
$calls['quick_order'] = attempt(fn () => $order->QuickOrder(['Request' => []]));

echo json_encode([
    'functions' => ['order' => $order->__getFunctions(), 'query' => $query->__getFunctions()],
    'calls' => $calls,
], JSON_THROW_ON_ERROR | JSON_PRETTY_PRINT), "\n";
