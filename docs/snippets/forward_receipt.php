<?php
// Forward Stripe's ping events to the destination monitor: the proof that they reached this application.
//
// PHP 7.4+ with the curl extension. Call forward_ping_receipt($rawBody, $signature) in your Stripe webhook
// handler with the request's raw body (exactly as received) and its Stripe-Signature header. A
// v2.core.event_destination.ping event goes, unchanged, to MONITOR_WEBHOOK_URL (the stack's ApiUrl
// followed by /webhooks/stripe), which verifies Stripe's signature; any other event is left alone. No AWS
// credentials and no secret needed. A failure is logged, never thrown: the monitor cannot break your
// handler.
//
//   $body = file_get_contents('php://input');
//   $signature = $_SERVER['HTTP_STRIPE_SIGNATURE'] ?? '';
//   // ... verify and handle the event as you do today ...
//   forward_ping_receipt($body, $signature);
//   http_response_code(200);

function forward_ping_receipt(string $rawBody, string $signature, ?string $url = null): bool
{
    $url = $url ?: getenv('MONITOR_WEBHOOK_URL');
    $event = json_decode($rawBody, true);
    if (!$url || !is_array($event) || ($event['type'] ?? null) !== 'v2.core.event_destination.ping') {
        return false;
    }
    try {
        $curl = curl_init($url);
        curl_setopt_array($curl, [
            CURLOPT_POST => true,
            CURLOPT_POSTFIELDS => $rawBody,
            CURLOPT_HTTPHEADER => ['Content-Type: application/json', "Stripe-Signature: $signature"],
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_TIMEOUT => 5,
        ]);
        $answered = curl_exec($curl) !== false;
        $status = curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
        if ($answered && $status >= 200 && $status < 300) {
            return true;
        }
        error_log('ping receipt not forwarded: ' . ($answered ? "HTTP $status" : curl_error($curl)));
    } catch (Throwable $e) { // whatever happens to the monitor (or to curl), your handler goes on
        error_log('ping receipt not forwarded: ' . $e->getMessage());
    }
    return false;
}
