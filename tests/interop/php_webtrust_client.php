<?php
/*
 * The drop-in services (/webtrust/order, /webtrust/query) through PHP's SoapClient, called with
 * the nested arrays the earlier webtrust API's PHP library (SymAPI) builds: its request header
 * (PartnerCode, AuthToken, UseReplayToken true and ReplayToken when a token is given, ApiVersion),
 * Reissue's options as OrderParameters, a replayed token.
 *
 * Reads one JSON job on stdin:
 *   {"base": URL, "partner": {"code", "username", "password"}, "order": PartnerOrderID,
 *    "csr": PEM, "outside_csr": PEM, "replay_order": PartnerOrderID, "replay_token": token,
 *    "replay_csr": PEM, "replay_other_csr": PEM}
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

/*
 * The request header as SymAPI (PHP) builds it: PartnerCode and AuthToken; with a ReplayToken in the
 * call's options, UseReplayToken true and the ReplayToken; ApiVersion when set. The order
 * operations then add PartnerOrderID (and ProductCode where the library does).
 */
function request_header(array $job, array $options = []): array
{
    $header = ['PartnerCode' => $job['partner']['code'], 'AuthToken' => auth($job)];
    if (isset($options['ReplayToken'])) {
        $header += ['UseReplayToken' => true, 'ReplayToken' => $options['ReplayToken']];
    }
    if (isset($options['ApiVersion'])) {
        $header['ApiVersion'] = $options['ApiVersion'];
    }
    return $header;
}

function order_header(array $job, ?string $order, array $options = []): array
{
    $header = request_header($job, $options);
    if ($order !== null) {
        $header['PartnerOrderID'] = $order;
    }
    return $header;
}

function query_header(array $job): array
{
    return request_header($job, ['ApiVersion' => '2015-1']);
}

/* SymAPI's Reissue($partnerOrderID, $reissueEmail, $options): the options, ReplayToken taken out,
 * are the OrderParameters. */
function reissue_request(array $job, string $order, string $email, array $options): array
{
    $header = order_header($job, $order, $options);
    unset($options['ReplayToken']);
    return ['Request' => ['OrderRequestHeader' => $header, 'OrderParameters' => $options, 'ReissueEmail' => $email]];
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
$calls['reissue'] = attempt(fn () => $order->Reissue(reissue_request($job, $job['order'], 'admin@example.com', [
    'CSR' => $job['csr'], 'WebServerType' => 'apachessl', 'SignatureHashAlgorithm' => 'SHA256', 'ApiVersion' => '2015-1',
]))->ReissueResult);
$calls['outside'] = attempt(fn () => $order->Reissue(reissue_request($job, $job['order'], 'admin@example.com', [
    'CSR' => $job['outside_csr'],
]))->ReissueResult);
/* A replayed token: the same token and request twice (the first answer again, byte for byte), then
 * the same token with another CSR. */
$replayed = [];
foreach (['first' => $job['replay_csr'], 'again' => $job['replay_csr'], 'other' => $job['replay_other_csr']] as $name => $csr) {
    $calls["replay_$name"] = attempt(fn () => $order->Reissue(reissue_request($job, $job['replay_order'], 'admin@example.com', [
        'CSR' => $csr, 'ReplayToken' => $job['replay_token'],
    ]))->ReissueResult);
    $replayed[$name] = $order->__getLastResponse();
}
$calls['replay_bytes_equal'] = ['result' => $replayed['first'] === $replayed['again']];
$calls['replay_request'] = ['result' => str_contains((string) $order->__getLastRequest(), 'UseReplayToken>true<')];
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
    'RevokeReason' => 'cessation of service',  // one of the two reasons the library documents
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
