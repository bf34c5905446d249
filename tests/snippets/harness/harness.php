<?php
// Runs docs/snippets/forward_receipt.php as a web handler would call it: the raw body on stdin, the
// Stripe-Signature header in STRIPE_SIGNATURE, the monitor's URL in MONITOR_WEBHOOK_URL (the snippet reads
// it). Usage: php harness.php <snippet>; prints "forwarded" or "not forwarded".
require $argv[1];

$forwarded = forward_ping_receipt(file_get_contents('php://stdin'), getenv('STRIPE_SIGNATURE') ?: '');
echo ($forwarded === true ? 'forwarded' : 'not forwarded'), "\n";
