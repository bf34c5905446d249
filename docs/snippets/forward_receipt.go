// Forward Stripe's ping events to the destination monitor: the proof that they reached this application.
//
// Go standard library only (net/http). Call ForwardPingReceipt(body, signature, "") in your Stripe webhook
// handler with the request's raw body and its Stripe-Signature header. A v2.core.event_destination.ping
// event goes, unchanged, to the URL given or else MONITOR_WEBHOOK_URL (the stack's ApiUrl followed by
// /webhooks/stripe), which verifies Stripe's signature; any other event is left alone. No AWS credentials
// and no secret needed. A failure is logged, never returned as an error: the monitor cannot break your
// handler. Copy this file into your own package (and rename the package clause).
//
//	func stripeWebhook(w http.ResponseWriter, r *http.Request) {
//		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 65536))
//		// ... verify and handle the event as you do today ...
//		ForwardPingReceipt(body, r.Header.Get("Stripe-Signature"), "")
//		w.WriteHeader(http.StatusOK)
//	}
package monitor

import (
	"bytes"
	"encoding/json"
	"log"
	"net/http"
	"os"
	"time"
)

var monitorClient = &http.Client{Timeout: 5 * time.Second}

// ForwardPingReceipt reports whether the monitor accepted the ping: false for any other event, or when
// forwarding failed.
func ForwardPingReceipt(rawBody []byte, signature, url string) bool {
	if url == "" {
		url = os.Getenv("MONITOR_WEBHOOK_URL")
	}
	var event struct {
		Type string `json:"type"`
	}
	if url == "" || json.Unmarshal(rawBody, &event) != nil || event.Type != "v2.core.event_destination.ping" {
		return false
	}
	request, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(rawBody))
	if err != nil {
		log.Printf("ping receipt not forwarded: %v", err)
		return false
	}
	request.Header.Set("Content-Type", "application/json")
	request.Header.Set("Stripe-Signature", signature)
	response, err := monitorClient.Do(request)
	if err != nil {
		log.Printf("ping receipt not forwarded: %v", err)
		return false
	}
	defer response.Body.Close()
	if response.StatusCode/100 != 2 {
		log.Printf("ping receipt not forwarded: HTTP %d", response.StatusCode)
		return false
	}
	return true
}
