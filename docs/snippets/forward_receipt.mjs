// Forward Stripe's ping events to the destination monitor: the proof that they reached this application.
//
// Node.js 18+, no dependency (built-in fetch). Call forwardPingReceipt(rawBody, signature) in your Stripe
// webhook handler with the request's raw body (a Buffer or string exactly as received: not JSON parsed and
// serialized again) and its Stripe-Signature header. A v2.core.event_destination.ping event goes,
// unchanged, to MONITOR_WEBHOOK_URL (the stack's ApiUrl followed by /webhooks/stripe), which verifies
// Stripe's signature; any other event is left alone. No AWS credentials and no secret needed. A failure is
// logged, never thrown: the monitor cannot break your handler.
//
//   app.post("/stripe/webhook", express.raw({ type: "application/json" }), async (req, res) => {
//     const signature = req.get("Stripe-Signature");
//     // ... verify and handle the event as you do today ...
//     await forwardPingReceipt(req.body, signature);
//     res.sendStatus(200);
//   });
//
// (CommonJS: replace `export` with `module.exports = { forwardPingReceipt };` after the function.)

const PING = "v2.core.event_destination.ping";

export async function forwardPingReceipt(rawBody, signature, url = process.env.MONITOR_WEBHOOK_URL) {
  try {
    if (!url || JSON.parse(rawBody.toString()).type !== PING) return false;
    const answer = await fetch(url, {
      method: "POST",
      body: rawBody,
      headers: { "Content-Type": "application/json", "Stripe-Signature": signature },
      signal: AbortSignal.timeout(5000),
    });
    if (!answer.ok) console.warn(`ping receipt not forwarded: HTTP ${answer.status}`);
    return answer.ok;
  } catch (error) {
    console.warn(`ping receipt not forwarded: ${error.message}`);
    return false;
  }
}
