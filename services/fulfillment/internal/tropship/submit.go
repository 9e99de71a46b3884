package tropship

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/backorder/backorder/services/fulfillment/internal/order"
	"github.com/backorder/backorder/services/fulfillment/internal/retryafter"
)

// submission is the JSON body of tropship.md; every field is always sent.
type submission struct {
	Reference string   `json:"reference"`
	Delivery  delivery `json:"delivery"`
	Lines     []line   `json:"lines"`
	Notes     string   `json:"notes"`
}

type delivery struct {
	Name        string `json:"name"`
	Company     string `json:"company"`
	Line1       string `json:"line1"`
	Line2       string `json:"line2"`
	City        string `json:"city"`
	County      string `json:"county"`
	Postcode    string `json:"postcode"`
	CountryCode string `json:"country_code"`
	Phone       string `json:"phone"`
	Email       string `json:"email"`
}

type line struct {
	ProductCode string `json:"product_code"`
	Quantity    int    `json:"quantity"`
}

func wire(s order.Submission) submission {
	d := s.Delivery
	w := submission{
		Reference: s.Reference,
		Delivery: delivery{
			Name: d.Name, Company: d.Company, Line1: d.Line1, Line2: d.Line2, City: d.City,
			County: d.County, Postcode: d.Postcode, CountryCode: d.CountryCode, Phone: d.Phone, Email: d.Email,
		},
		Lines: make([]line, 0, len(s.Lines)),
		Notes: s.Notes,
	}
	for _, l := range s.Lines {
		w.Lines = append(w.Lines, line{ProductCode: l.ProductCode, Quantity: l.Quantity})
	}
	return w
}

// answer is what the orders endpoint may say, all shapes together.
type answer struct {
	Valid          json.RawMessage   `json:"valid"`
	OfflineOrderID json.RawMessage   `json:"offline_order_id"`
	Warnings       []json.RawMessage `json:"warnings"`
	Errors         []json.RawMessage `json:"errors"`
	// Not in tropship.md, but common error shapes.
	Error   json.RawMessage `json:"error"`
	Message string          `json:"message"`
}

// Submit sends one order, validate-only or live, and classifies the answer
// by tropship.md's table. It never returns an error: every failure is an
// order.Outcome, and a Reason never holds a secret.
func (c *Client) Submit(ctx context.Context, s order.Submission, validateOnly bool) order.Result {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	body, err := json.Marshal(wire(s))
	if err != nil {
		return order.Result{Outcome: order.NotSent, Reason: "encoding the order: " + err.Error()}
	}
	target := c.ordersURL + "?validate_only=" + strconv.FormatBool(validateOnly)
	rep, tokens, err := c.exchange(ctx, http.MethodPost, target, body, &c.orderRequests)
	var res order.Result
	if err != nil {
		res = classifyError(err, validateOnly)
	} else {
		res = classify(rep, validateOnly, time.Now())
	}
	res.Reason = limit(redact(res.Reason, append(tokens, c.cfg.ClientSecret)...))
	return res
}

// classifyError classifies a call that got no answer.
func classifyError(err error, validateOnly bool) order.Result {
	var te *tokenError
	if errors.As(err, &te) {
		return order.Result{Outcome: order.NotSent, Reason: "nothing sent: " + describeTokenError(te.err)}
	}
	var ge *guardError
	if errors.As(err, &ge) {
		return order.Result{Outcome: order.NotSent, Reason: "nothing sent: " + ge.Error()}
	}
	var se *sendError
	if errors.As(err, &se) && !se.sent {
		return order.Result{Outcome: order.NotSent, Reason: "nothing sent: " + se.Error()}
	}
	if validateOnly {
		// A validate-only call creates nothing, whatever became of it.
		return order.Result{Outcome: order.NotSent, Reason: "validation got no answer: " + err.Error()}
	}
	return order.Result{Outcome: order.Ambiguous,
		Reason: "the order was sent but no answer came back, so the supplier may have created it: " + err.Error()}
}

// classify maps an answer to an outcome (tropship.md's table). Whatever it
// cannot place is Ambiguous for a live call, since only a validate-only call
// is known to create nothing.
func classify(rep *reply, validateOnly bool, now time.Time) order.Result {
	var a answer
	decodeErr := json.Unmarshal(rep.body, &a)
	if rep.readErr != nil && decodeErr == nil {
		decodeErr = rep.readErr
	}
	st := rep.status
	unclear := func(reason string) order.Result {
		if validateOnly {
			return order.Result{Outcome: order.NotSent, Reason: "validation: " + reason}
		}
		return order.Result{Outcome: order.Ambiguous, Reason: reason + "; the supplier may have created the order"}
	}
	switch {
	case st >= 200 && st < 300:
		// A validation's verdict is read first: tropship.md's validate-only
		// answer (200 with a verdict) creates nothing, whatever else it
		// echoes. A 201, or an id with no verdict, says an order was made
		// after all, and it is kept as made: it must never be sent again.
		valid, hasVerdict := scalarBool(a.Valid)
		verdictOnly := validateOnly && hasVerdict && st != http.StatusCreated
		if id := scalarText(a.OfflineOrderID); id != "" && !verdictOnly {
			return order.Result{Outcome: order.Created, OfflineOrderID: id}
		}
		if st == http.StatusCreated {
			// Something was created, but we cannot tell what: a resend
			// would make a second one.
			return order.Result{Outcome: order.Ambiguous,
				Reason: fmt.Sprintf("HTTP 201 without an offline_order_id%s: an order was created but its id is unknown", decodeNote(decodeErr))}
		}
		if verdictOnly {
			if valid {
				r := order.Result{Outcome: order.Valid}
				if w := join(a.Warnings); w != "" {
					r.Reason = "valid, with warnings: " + w
				}
				return r
			}
			msg := join(append(append([]json.RawMessage(nil), a.Errors...), a.Warnings...))
			if msg == "" {
				msg = "no details given"
			}
			return order.Result{Outcome: order.Refused, Reason: "validation failed: " + msg}
		}
		return unclear(fmt.Sprintf("unexpected answer HTTP %d%s", st, decodeNote(decodeErr)))
	case st == http.StatusBadRequest || st == http.StatusUnprocessableEntity:
		return order.Result{Outcome: order.Refused,
			Reason: fmt.Sprintf("HTTP %d: %s", st, refusal(a))}
	case st == http.StatusUnauthorized:
		// Only reached after a resend with a fresh token.
		return order.Result{Outcome: order.NotSent,
			Reason: "the supplier refused the credentials: HTTP 401 twice, the second time with a freshly issued token"}
	case st == http.StatusTooManyRequests:
		return order.Result{Outcome: order.Throttled, RetryAfter: retryafter.Parse(rep.header, now),
			Reason: "the supplier is throttling requests (HTTP 429)"}
	case st >= 500:
		return unclear(fmt.Sprintf("the supplier failed with HTTP %d", st))
	case st == http.StatusConflict:
		// A conflict may well be "this reference exists".
		return unclear(fmt.Sprintf("HTTP 409 Conflict: %s", refusal(a)))
	case st == http.StatusRequestTimeout:
		return unclear("HTTP 408 Request Timeout")
	case (st == http.StatusForbidden || st == http.StatusNotFound || st == http.StatusMethodNotAllowed) && refusal(a) == noDetails:
		// Not an answer about the order (that would say what is wrong
		// with it, as tropship.md's refusals list errors) but about
		// where or as whom it was sent: nothing was created, and every
		// order would meet the same answer. So not REJECTED (which asks
		// a person to fix each order): tried again with backoff, the
		// reason naming the settings, so that orders go on by
		// themselves once they are fixed.
		return order.Result{Outcome: order.NotSent, Settings: true, Reason: fmt.Sprintf("HTTP %d (%s), nothing created: %s; %s",
			st, http.StatusText(st), refusal(a), misconfigured(st))}
	case st >= 400:
		// Any other client error: HTTP says the request was not acted on;
		// a person must fix the configuration or the order.
		return order.Result{Outcome: order.Refused,
			Reason: fmt.Sprintf("HTTP %d (%s): %s", st, http.StatusText(st), refusal(a))}
	default:
		return unclear(fmt.Sprintf("unexpected answer HTTP %d", st))
	}
}

// misconfigured says which settings a 403, 404 or 405 to an order points
// at.
func misconfigured(status int) string {
	if status == http.StatusForbidden {
		return "the TropShip account (TROPSHIP_CLIENT_ID) may not be allowed to place orders"
	}
	return "check TROPSHIP_BASE_URL and TROPSHIP_ORDERS_PATH"
}

func decodeNote(err error) string {
	if err == nil {
		return ""
	}
	return " (unreadable body)"
}

// refusal renders the errors of a 4xx answer for a person.
func refusal(a answer) string {
	if msg := join(a.Errors); msg != "" {
		return msg
	}
	if s := scalarText(a.Error); s != "" {
		return s
	}
	if a.Message != "" {
		return a.Message
	}
	if msg := describe(a.Error); msg != "" {
		return msg
	}
	return noDetails
}

// noDetails is refusal's answer for a 4xx that says nothing of its cause.
const noDetails = "no details given"

// join renders errors or warnings: {"field","code","message"} objects or
// plain strings.
func join(items []json.RawMessage) string {
	var parts []string
	for _, it := range items {
		if s := describe(it); s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "; ")
}

func describe(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	if s := scalarText(raw); s != "" {
		return s
	}
	var e struct {
		Field   string `json:"field"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(raw, &e); err != nil || (e.Field == "" && e.Code == "" && e.Message == "") {
		return strings.Join(strings.Fields(string(raw)), " ")
	}
	s := e.Message
	if s == "" {
		s = e.Code
	} else if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.Field != "" {
		s = e.Field + ": " + s
	}
	return s
}

// scalarText returns a JSON string or number as text; "" for anything else.
func scalarText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s)
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// scalarBool reads a JSON boolean, or one written as "true"/"false" or
// 1/0; ok is false for anything else (absent, null, another value).
func scalarBool(raw json.RawMessage) (v, ok bool) {
	switch strings.ToLower(scalarText(raw)) {
	case "true", "1":
		return true, true
	case "false", "0":
		return false, true
	}
	if err := json.Unmarshal(raw, &v); err == nil && len(raw) > 0 && string(raw) != "null" {
		return v, true
	}
	return false, false
}

// limit keeps a reason readable and storable.
func limit(s string) string {
	const maxLen = 1000
	if len(s) <= maxLen {
		return s
	}
	cut := maxLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
