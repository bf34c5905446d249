# Runs docs/snippets/forward_receipt.rb as a web handler would call it: the raw body on stdin, the
# Stripe-Signature header in STRIPE_SIGNATURE, the monitor's URL in MONITOR_WEBHOOK_URL (the snippet reads
# it). Usage: ruby harness.rb <snippet>; prints "forwarded" or "not forwarded".
require File.expand_path(ARGV.fetch(0))

body = $stdin.binmode.read
forwarded = StripeMonitor.forward_ping_receipt(body, ENV.fetch("STRIPE_SIGNATURE", ""))
puts(forwarded == true ? "forwarded" : "not forwarded")
