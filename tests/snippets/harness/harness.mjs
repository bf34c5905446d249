// Runs docs/snippets/forward_receipt.mjs as a web handler would call it: the raw body on stdin (a Buffer),
// the Stripe-Signature header in STRIPE_SIGNATURE, the monitor's URL in MONITOR_WEBHOOK_URL (the snippet
// reads it). Usage: node harness.mjs <snippet>; prints "forwarded" or "not forwarded".
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const { forwardPingReceipt } = await import(pathToFileURL(resolve(process.argv[2])).href);
const forwarded = await forwardPingReceipt(readFileSync(0), process.env.STRIPE_SIGNATURE ?? "");
console.log(forwarded === true ? "forwarded" : "not forwarded");
