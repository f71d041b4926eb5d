package hub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const maxRedirects = 10

// send performs a request, retrying answers 429 and 5xx and dropped
// connections with exponential backoff. Redirects are followed by hand:
// all of them when followAll is set, otherwise only those that stay on the
// same host (the Hub's answers for renamed repositories), so that the
// caller can read the headers of a redirect to another host. The
// Authorization header goes only to the endpoint's own scheme and host.
//
// A response is returned for every status once retries are spent; the
// caller checks the status.
func (c *Client) send(ctx context.Context, method, rawURL string, header http.Header, followAll bool) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		resp, err := c.sendWatched(ctx, method, rawURL, header, followAll)
		if err == nil && !retryableStatus(resp.StatusCode) {
			return resp, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			closeBody(resp)
			return nil, cerr
		}
		if err != nil && !retryableError(err) {
			return nil, err
		}
		if attempt >= c.maxRetries {
			if err != nil {
				return nil, fmt.Errorf("%w (gave up after %d attempts)", err, attempt+1)
			}
			return resp, nil
		}
		closeBody(resp)
		if err := c.sleep(ctx, attempt); err != nil {
			return nil, err
		}
	}
}

// errStalled reports a request that received nothing for StallTimeout.
var errStalled = errors.New("no data received within the stall timeout")

// sendWatched is sendOnce under a watchdog that abandons the request when
// neither headers nor body bytes arrive for c.stall. The watchdog lives
// until the response body is closed.
func (c *Client) sendWatched(ctx context.Context, method, rawURL string, header http.Header, followAll bool) (*http.Response, error) {
	if c.stall <= 0 {
		return c.sendOnce(ctx, method, rawURL, header, followAll)
	}
	reqCtx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(c.stall, func() { cancel(errStalled) })
	resp, err := c.sendOnce(reqCtx, method, rawURL, header, followAll)
	if err != nil {
		timer.Stop()
		stalled := ctx.Err() == nil && errors.Is(context.Cause(reqCtx), errStalled)
		cancel(nil)
		if stalled {
			return nil, fmt.Errorf("%s %s: %w (%v)", method, hostOf(rawURL), errStalled, c.stall)
		}
		return nil, err
	}
	resp.Body = &watchedBody{ReadCloser: resp.Body, ctx: ctx, reqCtx: reqCtx, timer: timer, d: c.stall, cancel: cancel}
	return resp, nil
}

// watchedBody re-arms the stall watchdog on every read.
type watchedBody struct {
	io.ReadCloser
	ctx, reqCtx context.Context
	timer       *time.Timer
	d           time.Duration
	cancel      context.CancelCauseFunc
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.d)
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.ctx.Err() == nil && errors.Is(context.Cause(b.reqCtx), errStalled) {
		err = fmt.Errorf("%w (%v)", errStalled, b.d)
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.timer.Stop()
	b.cancel(nil)
	return b.ReadCloser.Close()
}

func (c *Client) sendOnce(ctx context.Context, method, rawURL string, header http.Header, followAll bool) (*http.Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("bad URL %q: %w", rawURL, err)
	}
	for hops := 0; ; hops++ {
		req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
		if err != nil {
			return nil, err
		}
		for k, v := range header {
			req.Header[k] = v
		}
		req.Header.Set("User-Agent", c.userAgent)
		// Plain bytes, so that Content-Length is the file's size and
		// Range offsets count file bytes.
		req.Header.Set("Accept-Encoding", "identity")
		if c.token != "" && c.isEndpoint(u) {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, err
		}
		if !isRedirect(resp.StatusCode) {
			return resp, nil
		}
		loc := resp.Header.Get("Location")
		if loc == "" {
			return resp, nil
		}
		next, err := u.Parse(loc)
		if err != nil {
			closeBody(resp)
			return nil, fmt.Errorf("bad redirect from %s to %q: %w", u.Redacted(), loc, err)
		}
		if !followAll && (next.Host != u.Host || next.Scheme != u.Scheme) {
			return resp, nil
		}
		if hops >= maxRedirects {
			closeBody(resp)
			return nil, fmt.Errorf("%s: more than %d redirects", rawURL, maxRedirects)
		}
		closeBody(resp)
		u = next
	}
}

// isEndpoint reports whether u is on the Hub itself (same scheme and
// host), the only place a token may be sent.
func (c *Client) isEndpoint(u *url.URL) bool {
	return c.endpointHost != "" && u.Host == c.endpointHost &&
		strings.HasPrefix(c.endpoint, u.Scheme+"://")
}

// sleep waits before retry number attempt+1.
func (c *Client) sleep(ctx context.Context, attempt int) error {
	d := c.baseDelay
	for i := 0; i < attempt && d < c.maxDelay; i++ {
		d *= 2
	}
	d = min(d, c.maxDelay)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func isRedirect(code int) bool {
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusInternalServerError ||
		code == http.StatusBadGateway || code == http.StatusServiceUnavailable ||
		code == http.StatusGatewayTimeout
}

// retryableError reports whether a transport error is worth retrying: a
// dropped or timed-out connection is; a failure to resolve or reach the
// host is not (the network is down or the endpoint is wrong, and the
// caller may fall back to the cache at once).
func retryableError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	return true
}

// isNetworkError reports whether err means the Hub could not be reached
// or answered nothing, as opposed to an error answer.
func isNetworkError(err error) bool {
	var he *HTTPError
	if errors.As(err, &he) {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF)
}

func closeBody(resp *http.Response) {
	if resp == nil {
		return
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}
