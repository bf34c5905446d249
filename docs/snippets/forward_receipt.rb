# Forward Stripe's ping events to the destination monitor: the proof that they reached this application.
#
# Ruby standard library only (net/http, json). Call StripeMonitor.forward_ping_receipt(raw_body, signature)
# in your Stripe webhook handler with the request's raw body (exactly as received, not JSON parsed and
# generated again) and its Stripe-Signature header. A v2.core.event_destination.ping event goes, unchanged,
# to MONITOR_WEBHOOK_URL (the stack's ApiUrl followed by /webhooks/stripe), which verifies Stripe's
# signature; any other event is left alone. No AWS credentials and no secret needed. A failure is logged,
# never raised: the monitor cannot break your handler.
#
#   post "/stripe/webhook" do  # Sinatra; in Rails: request.raw_post, request.headers["Stripe-Signature"]
#     body = request.body.read
#     signature = request.env["HTTP_STRIPE_SIGNATURE"]
#     # ... verify and handle the event as you do today ...
#     StripeMonitor.forward_ping_receipt(body, signature)
#     200
#   end
require "json"
require "net/http"

module StripeMonitor
  PING = "v2.core.event_destination.ping"

  def self.forward_ping_receipt(raw_body, signature, url = ENV["MONITOR_WEBHOOK_URL"])
    return false if url.to_s.empty? || JSON.parse(raw_body)["type"] != PING

    uri = URI(url)
    answer = Net::HTTP.start(uri.host, uri.port, use_ssl: uri.scheme == "https",
                             open_timeout: 5, read_timeout: 5, write_timeout: 5) do |http|
      http.post(uri.request_uri, raw_body, "Content-Type" => "application/json",
                                           "Stripe-Signature" => signature.to_s)
    end
    warn "ping receipt not forwarded: HTTP #{answer.code}" unless answer.is_a?(Net::HTTPSuccess)
    answer.is_a?(Net::HTTPSuccess)
  rescue StandardError => e # whatever happens to the monitor, your handler goes on
    warn "ping receipt not forwarded: #{e.message}"
    false
  end
end
