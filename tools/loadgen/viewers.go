package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"
)

// viewers are plain /v1/watch clients: each reads whatever the aggregator
// streams (whatever the watch protocol's version) and counts the bytes, as
// the ingest check's viewers do.
type viewers struct {
	bytes []atomic.Int64
	live  atomic.Int64
	wg    sync.WaitGroup
}

func startViewers(ctx context.Context, baseURL, token string, n int) (*viewers, error) {
	v := &viewers{bytes: make([]atomic.Int64, n)}
	url := "ws" + strings.TrimPrefix(baseURL, "http") + "/v1/watch"
	for i := range n {
		ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if err != nil {
			return v, fmt.Errorf("viewer %d: %w", i, err)
		}
		ws.SetReadLimit(-1)
		v.live.Add(1)
		v.wg.Add(1)
		go func() {
			defer v.wg.Done()
			defer v.live.Add(-1)
			defer ws.CloseNow()
			for {
				_, b, err := ws.Read(ctx)
				if err != nil {
					return
				}
				v.bytes[i].Add(int64(len(b)))
			}
		}()
	}
	return v, nil
}

// max returns the most bytes any viewer has received.
func (v *viewers) max() int64 {
	var m int64
	for i := range v.bytes {
		m = max(m, v.bytes[i].Load())
	}
	return m
}
