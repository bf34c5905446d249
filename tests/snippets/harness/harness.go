// Runs docs/snippets/forward_receipt.go as a web handler would call it: the raw body on stdin, the
// Stripe-Signature header in STRIPE_SIGNATURE, the monitor's URL in MONITOR_WEBHOOK_URL (the snippet reads
// it). Built by the tests in a module of their own, beside the snippet copied into ./monitor; prints
// "forwarded" or "not forwarded".
package main

import (
	"fmt"
	"io"
	"os"

	"snippetharness/monitor"
)

func main() {
	body, err := io.ReadAll(os.Stdin)
	if err != nil {
		panic(err)
	}
	if monitor.ForwardPingReceipt(body, os.Getenv("STRIPE_SIGNATURE"), "") {
		fmt.Println("forwarded")
	} else {
		fmt.Println("not forwarded")
	}
}
