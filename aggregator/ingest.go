package aggregator

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// session is one collector connection. Its goroutine reads and applies
// frames; acks go out from the server's ack senders when one is due (no
// second goroutine per collector waits for them); closeWith may be called
// from anywhere, once.
type session struct {
	s      *Server
	conn   *websocket.Conn
	tok    *Token
	remote string
	node   atomic.Pointer[nodeState] // set once, at Hello

	rbuf *[]byte // reader only: the frame being read, from Server.frameBufs

	encMu sync.Mutex
	enc   *wire.Encoder
	wbuf  []byte

	clk        clockFilter  // reader only
	clockAware atomic.Bool  // the collector sent a Clock frame: acks may carry our time
	clockAsk   atomic.Int32 // acks still to carry our time (see clockRefresh)
	clockNext  atomic.Int64 // server clock (UnixNano) of the next periodic reading

	ackSeq  atomic.Uint64 // highest committed sequence to ack
	ackSent atomic.Uint64 // highest sequence acked
	acks    ackSched
	stopped atomic.Bool   // apply nothing more
	ready   chan struct{} // closed once Welcome is sent: acks may follow
	once    sync.Once
}

// rejectErr closes a session with a wire close code and counts the reason.
type rejectErr struct {
	code   wire.CloseCode
	reason string // metric label
	msg    string // sent to the peer
}

func (e *rejectErr) Error() string { return e.msg }

func reject(code wire.CloseCode, reason, format string, a ...any) *rejectErr {
	return &rejectErr{code: code, reason: reason, msg: fmt.Sprintf(format, a...)}
}

// errEnded ends a session that was replaced or stopped; nothing to report.
var errEnded = errors.New("session ended")

// authorize checks the bearer token before any upgrade. It answers 401 for a
// missing or unknown token and 403 for a token of the wrong role, and
// returns nil then.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, role Role) *Token {
	secret, _ := bearer(r.Header.Get("Authorization"))
	tok := s.cfg.Tokens.lookup(secret)
	if tok == nil {
		if role == RoleCollector {
			s.m.rejected.WithLabelValues(rejectUnauthorized).Inc()
		}
		s.noteAuthFailure(r, "no valid token")
		w.Header().Set("WWW-Authenticate", `Bearer realm="fleettop"`)
		http.Error(w, "unauthorized: give a valid token as \"Authorization: Bearer SECRET\"", http.StatusUnauthorized)
		return nil
	}
	if !tok.Can(role) {
		if role == RoleCollector {
			s.m.rejected.WithLabelValues(rejectForbidden).Inc()
		}
		s.noteAuthFailure(r, "token "+tok.Name+" used outside its role "+string(tok.Role))
		http.Error(w, fmt.Sprintf("forbidden: a %s token cannot use %s", tok.Role, r.URL.Path), http.StatusForbidden)
		return nil
	}
	return tok
}

// noteAuthFailure logs a refused request at Debug, and at most once a
// minute a Warn with how many were refused meanwhile: a scanner or a
// misconfigured fleet cannot flood the log.
func (s *Server) noteAuthFailure(r *http.Request, why string) {
	s.log.Debug("request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "why", why)
	if s.authLog.allow(s.clock()) {
		s.log.Warn("refusing requests without a valid token", "path", r.URL.Path, "remote", r.RemoteAddr, "why", why,
			"refused_since_last_report", s.authLog.suppressed())
	}
}

func (s *Server) handleCollect(w http.ResponseWriter, r *http.Request) {
	tok := s.authorize(w, r, RoleCollector)
	if tok == nil {
		return
	}
	s.wg.Add(1)
	if s.closing.Load() {
		s.wg.Done()
		http.Error(w, "aggregator shutting down", http.StatusServiceUnavailable)
		return
	}
	conn, err := websocket.Accept(smallBuffers{w}, r, nil)
	if err != nil {
		s.wg.Done()
		s.log.Debug("collect upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	conn.SetReadLimit(wire.MaxFrameSize)
	ss := &session{
		s: s, conn: conn, tok: tok, remote: r.RemoteAddr,
		enc:   wire.NewEncoder(),
		ready: make(chan struct{}),
	}
	// The session runs on a goroutine of its own, owned by s.wg, and the
	// handler returns: net/http then lets go of the connection's 4 KiB
	// request reader and writer and the handler's stack, which would
	// otherwise live as long as the collector stays connected.
	go func() {
		defer s.wg.Done()
		s.serveCollector(ss, tok)
	}()
}

// serveCollector runs one collector session until it ends and closes it.
func (s *Server) serveCollector(ss *session, tok *Token) {
	defer track(s, s.sessions, s.m.collectors, ss)()
	if s.closing.Load() { // Close snapshotted sessions before we registered
		ss.closeWith(wire.CloseGoingAway, "aggregator shutting down")
		return
	}
	err := ss.run()
	defer ss.endAcks()
	s.endCollector(ss, tok, err)
}

// endCollector counts, logs and closes a collector session that ended with
// err (its own function: its locals stay off the stack while the session
// runs, see session.run).
func (s *Server) endCollector(ss *session, tok *Token, err error) {
	var rj *rejectErr
	switch {
	case errors.As(err, &rj):
		s.m.rejected.WithLabelValues(rj.reason).Inc()
		s.log.Warn("collector session rejected", "node", ss.nodeID(), "token", tok.Name, "remote", ss.remote, "reason", rj.reason, "err", rj.msg)
		ss.closeWith(rj.code, rj.msg)
	case errors.Is(err, errEnded):
		// replaced or shut down: whoever stopped us closes the connection
	default:
		if st := websocket.CloseStatus(err); st == websocket.StatusNormalClosure || st == websocket.StatusGoingAway {
			s.log.Debug("collector closed", "node", ss.nodeID(), "status", st)
		} else {
			s.log.Info("collector session ended", "node", ss.nodeID(), "remote", ss.remote, "err", err)
		}
		ss.closeWith(wire.CloseNormal, "")
	}
}

func (ss *session) nodeID() string {
	if n := ss.node.Load(); n != nil {
		return n.id
	}
	return ""
}

// readMsg reads one binary message into a frame buffer from the server's
// pool, refusing anything larger than wire.MaxFrameSize. Once the frame is
// decoded (nothing decoded refers to it) the caller gives the buffer back
// with doneMsg.
func (ss *session) readMsg() ([]byte, error) {
	typ, r, err := ss.conn.Reader(context.Background())
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageBinary {
		return nil, reject(wire.CloseProtocol, rejectProtocol, "text message on the collect stream")
	}
	p := ss.s.frameBuf()
	buf := (*p)[:0]
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(2*cap(buf), wire.MaxFrameSize+1)-len(buf))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > wire.MaxFrameSize || errors.Is(err, websocket.ErrMessageTooBig) {
			return nil, reject(wire.CloseTooBig, rejectTooBig, "frame larger than %d bytes", wire.MaxFrameSize)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	*p = buf
	ss.rbuf = p
	ss.s.m.bytes.Add(float64(len(buf)))
	return buf, nil
}

// doneMsg gives the frame buffer of the last readMsg back to the server's
// pool: between its once-a-second frames a collector holds none (it kept 1-2
// KiB, 2 MB at 1,250 collectors). A buffer a large frame (Hello, a resent
// backlog) grew past maxPooledFrame is left to the GC.
func (ss *session) doneMsg() {
	if p := ss.rbuf; p != nil && cap(*p) <= maxPooledFrame {
		ss.s.frameBufs.Put(p)
	}
	ss.rbuf = nil
}

// frameBuf returns a frame buffer from the pool, or a new one of readBufSize.
func (s *Server) frameBuf() *[]byte {
	if p, ok := s.frameBufs.Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 0, readBufSize)
	return &b
}

// Per-connection buffers, sized to a collector's traffic: one Samples frame
// a second of about 100 B (an 8-GPU record), an Ack every few seconds. net/http
// would keep a 4 KiB reader and writer per hijacked connection, which at
// 12,500 collectors is 100 MiB for frames of a hundred bytes; larger frames
// (Hello, a backlog after an outage) read and write through them unharmed.
const (
	readBufSize    = 512      // a frame buffer, before it grows
	maxPooledFrame = 16 << 10 // the largest frame buffer kept for reuse
	connReadSize   = 512
	connWriteSize  = 256
)

// smallBuffers hijacks a collector's connection with connReadSize and
// connWriteSize buffers instead of net/http's.
type smallBuffers struct{ http.ResponseWriter }

func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("http.ResponseWriter does not implement http.Hijacker")
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	if brw.Writer.Buffered() > 0 {
		if err := brw.Writer.Flush(); err != nil {
			c.Close()
			return nil, nil, err
		}
	}
	// Bytes net/http read ahead (a frame sent right after the handshake)
	// must sit in the new reader's buffer: the websocket library takes what
	// is buffered there and then reads the connection itself.
	n := brw.Reader.Buffered()
	b, _ := brw.Reader.Peek(n)
	var src io.Reader = c
	if n > 0 {
		src = io.MultiReader(bytes.NewReader(bytes.Clone(b)), c)
	}
	br := bufio.NewReaderSize(src, max(connReadSize, n))
	if n > 0 {
		if _, err := br.Peek(n); err != nil {
			c.Close()
			return nil, nil, err
		}
	}
	return c, bufio.NewReadWriter(br, bufio.NewWriterSize(c, connWriteSize)), nil
}

func decodeErr(err error) *rejectErr {
	switch {
	case errors.Is(err, wire.ErrTooBig):
		return reject(wire.CloseTooBig, rejectTooBig, "%v", err)
	case errors.Is(err, wire.ErrVersion):
		return reject(wire.CloseProtocol, rejectProtocol, "%v", err)
	}
	return reject(wire.CloseMalformed, rejectMalformed, "%v", err)
}

// run serves the session until it ends; the returned error says why.
//
// The handshake and the frame loop are functions of their own so that the
// handshake's locals (about 1 KB of the frame) are not on the stack while
// frames are applied: a session's deepest path (apply → insight → policy's
// Conditions → fmt) then fits the goroutine's 8 KiB stack. Over it, every
// collector's stack grows to 16 KiB on its next frame and back at the next GC
// cycle, 10 MB more at 1,250 collectors.
func (ss *session) run() error {
	dec := wire.NewDecoder()
	if err := ss.handshake(dec); err != nil {
		return err
	}
	return ss.receive(dec)
}

// handshake reads the collector's Hello, claims its node and answers with
// a Welcome.
func (ss *session) handshake(dec *wire.Decoder) error {
	s := ss.s
	// A connection that never introduces itself does not hold a session.
	helloTimer := time.AfterFunc(s.cfg.HelloTimeout, func() { ss.conn.CloseNow() })
	b, err := ss.readMsg()
	helloTimer.Stop()
	if err != nil {
		return err
	}
	f, err := dec.Decode(b)
	ss.doneMsg()
	if err != nil {
		return decodeErr(err)
	}
	h, ok := f.(*wire.Hello)
	if !ok {
		return reject(wire.CloseProtocol, rejectProtocol, "first frame must be hello, got type %d", f.Type())
	}
	if rj := validateHello(h); rj != nil {
		return rj
	}
	// An older collector is answered in its own protocol; its frames decode
	// as they are (the decoder reads every version from wire.MinVersion).
	enc, err := wire.NewEncoderVersion(h.Proto)
	if err != nil {
		return reject(wire.CloseProtocol, rejectProtocol, "%v", err)
	}
	ss.encMu.Lock()
	ss.enc = enc
	ss.encMu.Unlock()
	if !ss.tok.AllowsNode(h.Node.ID) {
		return reject(wire.CloseForbidden, rejectForbidden, "token %q may not send for node %q", ss.tok.Name, h.Node.ID)
	}
	// The decoder allocates a Hello afresh (wire.Decoder): its node is ours
	// to keep, and carries no device State (the aggregator decides that).
	nd := h.Node
retry:
	n, ok := s.claim(ss.tok, nd.ID)
	if !ok {
		return reject(wire.CloseLimit, rejectNodeLimit, "token %q already sends for %d node ids (the limit); raise --max-nodes-per-token or give nodes their own token",
			ss.tok.Name, s.cfg.MaxNodesPerToken)
	}
	// A node id belongs to one live session. A healthy holder (it answers
	// a ping) keeps it and this session is refused; a holder that does not
	// answer (a restarted collector's dead connection) is replaced.
	n.mu.Lock()
	holder := n.sess
	n.mu.Unlock()
	if holder != nil && holder.alive(s.cfg.TakeoverPing) {
		return s.conflict(n, holder, ss)
	}
	now := s.clock()
	if c, ok := s.cfg.Recorder.(Connector); ok {
		c.Connected(nd.ID, s.sampleClock())
	}
	n.mu.Lock()
	if s.closing.Load() {
		n.mu.Unlock()
		return errEnded // Close closes this session
	}
	if n.evicted { // forgotten while we pinged: start again
		n.mu.Unlock()
		goto retry
	}
	if n.sess != nil && n.sess != holder { // another session won meanwhile
		holder = n.sess
		n.mu.Unlock()
		return s.conflict(n, holder, ss)
	}
	old := n.sess
	n.sess = ss
	ss.node.Store(n)
	n.setNode(nd)
	n.lastSeen = now
	resume := n.committed.Load() + 1
	became := n.state != wire.StateOnline
	n.state = wire.StateOnline
	if became && s.cfg.Insights != nil {
		s.cfg.Insights.NodeState(&n.node, wire.StateOnline, now)
	}
	n.mu.Unlock()
	s.touch(n)
	if old != nil {
		old.stop()
		s.wg.Go(func() { old.closeWith(wire.CloseConflict, "replaced by a newer session for node "+n.id) })
	}
	if err := ss.send(&wire.Welcome{Proto: h.Proto, ResumeFrom: resume}); err != nil {
		return fmt.Errorf("send welcome: %w", err)
	}
	close(ss.ready)
	ss.startAcks()
	s.log.Debug("collector connected", "node", n.id, "token", ss.tok.Name, "remote", ss.remote, "resume_from", resume)
	return nil
}

// receive applies the collector's frames until the session ends.
func (ss *session) receive(dec *wire.Decoder) error {
	s := ss.s
	for {
		b, err := ss.readMsg()
		if err != nil {
			return err
		}
		f, err := dec.Decode(b)
		ss.doneMsg() // what Decode returns does not refer to b
		if err != nil {
			return decodeErr(err)
		}
		switch f := f.(type) {
		case *wire.Samples:
			err := ss.apply(f.Samples)
			dec.Release() // applied: its buffers serve other sessions until our next frame
			if err != nil {
				return err
			}
		case *wire.Status:
			ss.setSources(f.Sources)
		case *wire.Clock:
			ss.onClock(f, s.sampleClock())
		case *wire.Close:
			return fmt.Errorf("collector closed: %d %s", f.Code, f.Reason)
		default:
			return reject(wire.CloseProtocol, rejectProtocol, "unexpected frame type %d from a collector", f.Type())
		}
	}
}

// alive reports whether the session's peer answers a ping within d.
func (ss *session) alive(d time.Duration) bool {
	if ss.stopped.Load() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return ss.conn.Ping(ctx) == nil
}

// conflict refuses challenger because holder, a healthy session, already
// holds node n: counted, logged and alerted with both remote addresses.
func (s *Server) conflict(n *nodeState, holder, challenger *session) *rejectErr {
	s.m.conflicts.Inc()
	now := s.clock()
	s.conflicts.note(n.id, holder.remote, challenger.remote, now)
	s.log.Warn("node id claimed by two collectors; refusing the second while the first is healthy",
		"node", n.id, "holder", holder.remote, "refused", challenger.remote, "token", challenger.tok.Name)
	return reject(wire.CloseNodeInUse, rejectConflict,
		"node id %s is in use by a live session from %s; give this collector its own node_id", n.id, holder.remote)
}

// apply applies the records of one Samples frame under the node's lock:
// duplicates are dropped, gaps counted, each applied record recorded and
// observed.
func (ss *session) apply(recs []fleet.Sample) error {
	s := ss.s
	n := ss.node.Load()
	now := s.clock()
	var applied, gpus, dups, gaps uint64
	var repairs wire.Repairs
	var refused error
	var lastRec *fleet.Sample
	n.mu.Lock()
	if n.sess != ss || ss.stopped.Load() {
		n.mu.Unlock()
		return errEnded
	}
	last := n.seq.Load()
	for i := range recs {
		r := &recs[i]
		if r.Seq <= last {
			dups++
			continue
		}
		rp, err := wire.SanitizeSampleAfter(r, n.procs)
		if err == nil {
			err = wire.CheckSeqJump(last, r.Seq, s.cfg.MaxSeqJump)
		}
		if err != nil {
			refused = err
			break
		}
		repairs.Add(rp)
		ss.clk.correct(r)
		// A gap is counted only against a sequence we know: the first
		// record ever seen from a node starts its history.
		if last > 0 && r.Seq > last+1 {
			gaps += r.Seq - last - 1
		}
		last = r.Seq
		gpus += uint64(n.applyRecord(r, now))
		applied++
		lastRec = r
		s.cfg.Recorder.Record(&n.node, n.gen, r)
		if s.cfg.Insights != nil {
			s.cfg.Insights.Observe(&n.node, n.gen, r)
		}
	}
	if lastRec != nil {
		// Under the lock: the ack of these records (flush takes it to find
		// the session) asks for a reading if this one strays.
		ss.checkStray(lastRec, s.sampleClock())
	}
	n.dups += dups
	n.gaps += gaps
	// The counters, then the sequence: a flush commits and acks what n.seq
	// says was applied, so n.seq moves only once the records are recorded
	// (an ack must never cover a record the Recorder has not seen) and
	// counted (a client that sees the ack, or the view's Seq, sees them).
	if applied > 0 {
		s.m.samples.Add(float64(applied))
		s.m.gpuSamples.Add(float64(gpus))
	}
	if dups > 0 {
		s.m.dups.Add(float64(dups))
	}
	if gaps > 0 {
		s.m.gaps.Add(float64(gaps))
	}
	if !repairs.Zero() {
		s.countRepairs(repairs)
	}
	if applied > 0 {
		// Changed for viewers before the sequence is published: a viewer
		// that connects after the ack must not get this change again as a
		// delta. The hub is kicked after the unlock, when it can take the
		// node's lock and rebuild the row (watchHub skips a locked node).
		v := s.version.Add(1)
		n.version.Store(v)
		if h := s.watchHub.Load(); h != nil && h.watching.Load() {
			// Someone watches: the hub will want the row. Unwatched rows
			// are taken by buildRow when a viewer comes (their version
			// is behind).
			s.takeRowValues(n, &n.row, v)
		}
	}
	n.seq.Store(last)
	n.mu.Unlock()
	if applied > 0 {
		s.kickWatch(n)
	}
	if gaps > 0 {
		s.log.Info("sequence gap", "node", n.id, "lost", gaps, "now_at", last)
	}
	if !repairs.Zero() {
		s.logRepairs(n.id, repairs)
	}
	if refused != nil {
		var inv *wire.Invalid
		reason := rejectMalformed
		if errors.As(refused, &inv) {
			reason = inv.Reason
		}
		return reject(wire.CloseInvalid, reason, "bad record: %v", refused)
	}
	return nil
}

// countRepairs counts values a node sent outside their bounds (made absent
// or repaired by wire.SanitizeSampleAfter) in fleettop_ingest_repaired_total.
func (s *Server) countRepairs(rp wire.Repairs) {
	for _, c := range []struct {
		reason string
		n      int
	}{{wire.ReasonOutOfRange, rp.OutOfRange}, {wire.ReasonBadString, rp.BadString}, {wire.ReasonBadTime, rp.BadTime}} {
		if c.n > 0 {
			s.m.repaired.WithLabelValues(c.reason).Add(float64(c.n))
		}
	}
}

// logRepairs logs the repairs countRepairs counted, at most once a minute
// per server so that a broken node cannot flood the log.
func (s *Server) logRepairs(node string, rp wire.Repairs) {
	if s.repairLog.allow(s.clock()) {
		s.log.Warn("node sent values outside their bounds; made absent or repaired (counted in fleettop_ingest_repaired_total)",
			"node", node, "out_of_range", rp.OutOfRange, "bad_string", rp.BadString, "bad_time", rp.BadTime)
	}
}

// setSources installs the collector's per-source health from a Status frame.
func (ss *session) setSources(src []fleet.SourceStatus) {
	wire.SanitizeSources(src)
	n := ss.node.Load()
	c := src // a decoded Status is allocated afresh, like a Hello
	n.mu.Lock()
	if n.sess != ss || ss.stopped.Load() {
		n.mu.Unlock()
		return
	}
	n.node.Sources = c
	n.bump()
	n.mu.Unlock()
	ss.s.touch(n)
}

// send encodes and writes one frame within the write timeout.
func (ss *session) send(f wire.Frame) error {
	ss.encMu.Lock()
	defer ss.encMu.Unlock()
	b, err := ss.enc.AppendFrame(ss.wbuf[:0], f)
	if err != nil {
		return fmt.Errorf("encode %T: %w", f, err)
	}
	ss.wbuf = b
	ctx, cancel := context.WithTimeout(context.Background(), ss.s.cfg.WriteTimeout)
	defer cancel()
	return ss.conn.Write(ctx, websocket.MessageBinary, b)
}

// ackSched times a session's acks. An ack that is due waits on the server's
// ackQueue, which the flush loop's tick hands to a few senders: a collector
// connection holds one goroutine (its reader), not a second one parked on a
// channel for the life of the connection (a stack of several KiB per
// collector), nor a timer of its own.
type ackSched struct {
	mu    sync.Mutex
	next  time.Time      // no ack before this instant
	armed bool           // the ack waits in the queue or is being sent
	live  bool           // after Welcome and until the session ends
	wg    sync.WaitGroup // acks queued or being sent
}

// ackSenders is how many goroutines at most send the acks that fall due.
// Acks fall due together (every session's on the same flush instant, see
// fireAck): each sent from a goroutine of its own (its timer's), 1,250
// collectors took 1,250 goroutines at once every AckInterval, their stacks
// 4.4 MiB of the heap for a moment, and at 100,000 GPUs the aggregator's
// RSS was 16-23 MiB higher (tools/loadgen); a few senders write them one
// after another as fast. A peer that does not take its ack holds one
// sender for at most WriteTimeout.
const ackSenders = 4

// ackQueue holds the sessions whose ack waits for its instant (tick moves
// those due to the queue) and those due, in order, and sends their acks
// from at most ackSenders goroutines, which live while the queue is not
// empty.
type ackQueue struct {
	mu      sync.Mutex
	waiting map[*session]time.Time // not before then
	due     []*session
	head    int // due[head:] are to send
	senders int
	fire    func(*session) // sends one (session.fireAck; tests count)
}

// schedule queues ss's ack for at, or to send now if at has come.
func (q *ackQueue) schedule(ss *session, at, now time.Time) {
	q.mu.Lock()
	if at.After(now) {
		if q.waiting == nil {
			q.waiting = map[*session]time.Time{}
		}
		q.waiting[ss] = at
		q.mu.Unlock()
		return
	}
	start := q.queueLocked(ss)
	q.mu.Unlock()
	if start {
		go q.send()
	}
}

// cancel takes ss's ack out of the queue if it still waits for its
// instant; it reports whether it did.
func (q *ackQueue) cancel(ss *session) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.waiting[ss]; ok {
		delete(q.waiting, ss)
		return true
	}
	return false
}

// tick queues the acks whose instant has come by now to send.
func (q *ackQueue) tick(now time.Time) {
	q.mu.Lock()
	start := 0
	for ss, at := range q.waiting {
		if !at.After(now) {
			delete(q.waiting, ss)
			if q.queueLocked(ss) {
				start++
			}
		}
	}
	q.mu.Unlock()
	for range start {
		go q.send()
	}
}

// queueLocked appends ss to the acks to send and reports whether a sender
// is to start for it. Caller holds q.mu.
func (q *ackQueue) queueLocked(ss *session) bool {
	if q.head > 0 && q.head >= len(q.due)/2 { // the sent half: drop it
		n := copy(q.due, q.due[q.head:])
		clear(q.due[n:])
		q.due, q.head = q.due[:n], 0
	}
	q.due = append(q.due, ss)
	if q.senders < ackSenders {
		q.senders++
		return true
	}
	return false
}

// send sends the queued acks until none is left.
func (q *ackQueue) send() {
	for {
		q.mu.Lock()
		if q.head == len(q.due) {
			q.due, q.head = q.due[:0], 0
			q.senders--
			q.mu.Unlock()
			return
		}
		ss := q.due[q.head]
		q.due[q.head] = nil
		q.head++
		q.mu.Unlock()
		q.fire(ss)
	}
}

// ack schedules an Ack for seq; acks due meanwhile coalesce into one that
// carries the latest sequence.
func (ss *session) ack(seq uint64) {
	for {
		cur := ss.ackSeq.Load()
		if seq <= cur || ss.ackSeq.CompareAndSwap(cur, seq) {
			break
		}
	}
	ss.armAck()
}

// armAck queues the session's ack for its instant unless one is queued,
// the session has not sent Welcome, or it has ended.
func (ss *session) armAck() {
	a := &ss.acks
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.armed || !a.live || ss.ackSeq.Load() <= ss.ackSent.Load() {
		return
	}
	a.armed = true
	a.wg.Add(1)
	ss.s.acks.schedule(ss, a.next, time.Now())
}

// fireAck sends the pending ack. The next one waits at least AckInterval
// and until a whole FlushInterval of the clock, an instant shared by every
// session: the flush loop's next tick, which wakes anyway, hands every
// session due to the senders, instead of a wake-up per collector at
// scattered times (12,500 collectors acked every 5 s were 2,500 lone
// wake-ups a second).
func (ss *session) fireAck() {
	a := &ss.acks
	defer a.wg.Done()
	err := ss.sendAck()
	grid := ss.s.cfg.FlushInterval
	a.mu.Lock()
	a.next = time.Now().Add(ss.s.cfg.AckInterval).Truncate(grid).Add(grid)
	a.armed = false
	if err != nil {
		a.live = false // the connection is being closed: no more acks
	}
	a.mu.Unlock()
	if err != nil {
		ss.s.log.Debug("send ack", "node", ss.nodeID(), "err", err)
		ss.conn.CloseNow()
		return
	}
	ss.armAck() // a commit acked meanwhile: due at a.next
}

// startAcks lets acks go out once Welcome is sent; a commit may have
// acked the session before.
func (ss *session) startAcks() {
	ss.acks.mu.Lock()
	ss.acks.live = true
	ss.acks.mu.Unlock()
	ss.armAck()
}

// endAcks stops the ack timer and waits for an ack being sent.
func (ss *session) endAcks() {
	a := &ss.acks
	a.mu.Lock()
	a.live = false
	if a.armed && ss.s.acks.cancel(ss) {
		a.armed = false
		a.wg.Done()
	}
	a.mu.Unlock()
	a.wg.Wait()
}

// sendAck sends the pending ack, if any.
func (ss *session) sendAck() error {
	seq := ss.ackSeq.Load()
	if seq <= ss.ackSent.Load() {
		return nil
	}
	a := wire.Ack{Seq: seq}
	if ss.wantClock() {
		a.Time = ss.s.sampleClock()
	}
	if err := ss.send(&a); err != nil {
		return err
	}
	for {
		cur := ss.ackSent.Load()
		if seq <= cur || ss.ackSent.CompareAndSwap(cur, seq) {
			return nil
		}
	}
}

// halt makes the session apply nothing more but leaves it the node's live
// session, so that a final commit still acks it.
func (ss *session) halt() {
	if n := ss.node.Load(); n != nil {
		n.mu.Lock()
		defer n.mu.Unlock()
	}
	ss.stopped.Store(true)
}

// stop makes the session apply nothing more and detaches it from its node.
func (ss *session) stop() {
	n := ss.node.Load()
	if n == nil {
		ss.stopped.Store(true)
		return
	}
	n.mu.Lock()
	ss.stopped.Store(true)
	if n.sess == ss {
		n.sess = nil
	}
	n.mu.Unlock()
}

// closeWith sends a Close frame and closes the websocket with code. Safe to
// call more than once and from any goroutine; only the first call acts.
func (ss *session) closeWith(code wire.CloseCode, reason string) {
	ss.once.Do(func() {
		ss.stop()
		if len(reason) > 120 { // websocket close reasons are at most 123 bytes
			reason = reason[:120]
		}
		select {
		case <-ss.ready: // after Welcome: ack what the last commit made durable
			_ = ss.sendAck()
		default:
		}
		if code != wire.CloseNormal || reason != "" {
			_ = ss.send(&wire.Close{Code: code, Reason: reason})
		}
		_ = ss.conn.Close(websocket.StatusCode(code), reason)
	})
}

// flush commits every node whose applied sequence advanced, then acks the
// committed sequences to their live sessions. Nothing is acked when the
// commit fails: the records stay applied and are committed next time.
func (s *Server) flush(ctx context.Context) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	// The nodes that advanced and their sequences: every node, every
	// second, so the map and slice are kept (under commitMu).
	adv, seqs := s.flushAdv[:0], s.flushSeqs
	clear(seqs)
	for _, n := range s.nodeList() {
		if q := n.seq.Load(); q > n.committed.Load() {
			seqs[n.id] = q
			adv = append(adv, n)
		}
	}
	defer func() { clear(adv); s.flushAdv = adv[:0] }()
	if len(adv) == 0 {
		return nil
	}
	start := time.Now()
	s.commitStart.Store(start.UnixNano())
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := s.cfg.Recorder.Commit(cctx, seqs)
	cancel()
	s.commitStart.Store(0)
	s.m.commitSecs.Observe(time.Since(start).Seconds())
	if err != nil {
		s.m.commitErrs.Inc()
		f := &commitFailure{since: start, err: err.Error()}
		if prev := s.commitFail.Load(); prev != nil {
			f.since = prev.since
		} else {
			s.log.Error("commits failing: not ready, nothing acked until one succeeds", "err", err)
		}
		s.commitFail.Store(f)
		s.log.Error("commit applied samples; not acking", "nodes", len(adv), "err", err)
		return fmt.Errorf("commit: %w", err)
	}
	if prev := s.commitFail.Swap(nil); prev != nil {
		s.log.Info("commits succeed again: ready", "failing_for", time.Since(prev.since).Round(time.Second))
	}
	for _, n := range adv {
		q := seqs[n.id]
		n.committed.Store(q)
		n.mu.Lock()
		ss := n.sess
		n.mu.Unlock()
		if ss != nil {
			ss.ack(q)
		}
	}
	return nil
}

// checkStates reports state transitions to Insights and viewers, and closes
// sessions of nodes that went offline while connected.
func (s *Server) checkStates() {
	now := s.clock()
	for _, n := range s.nodeList() {
		n.mu.Lock()
		st := s.stateAt(n, now)
		changed := st != n.state
		var idle *session
		if changed {
			n.state = st
			if s.cfg.Insights != nil {
				s.cfg.Insights.NodeState(&n.node, st, now)
			}
			if st == wire.StateOffline {
				idle = n.sess
			}
		}
		n.mu.Unlock()
		if changed {
			s.touch(n)
			s.log.Info("node state", "node", n.id, "state", st, "last_seen", n.lastSeenAt())
		}
		if idle != nil {
			idle.stop()
			// Owned by the server's WaitGroup (the session's handler holds
			// it above zero), so Close waits for this close too.
			s.wg.Go(func() { idle.closeWith(wire.CloseNormal, "no samples for "+s.cfg.OfflineAfter.String()) })
		}
	}
	if t, ok := s.cfg.Insights.(ticker); ok {
		t.Tick(now)
	}
}

func (n *nodeState) lastSeenAt() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lastSeen
}

// commitTicks is how many of flushLoop's ticks make a CommitInterval, at
// least one.
func commitTicks(cfg Config) int {
	return max(int((cfg.CommitInterval+cfg.FlushInterval/2)/cfg.FlushInterval), 1)
}

func (s *Server) flushLoop() {
	defer s.loops.Done()
	t := time.NewTicker(s.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			if s.ticks++; s.ticks >= commitTicks(s.cfg) {
				s.ticks = 0
				_ = s.flush(s.ctx)
			}
			s.acks.tick(time.Now())
			s.checkStates()
			s.evictIdle(s.clock())
			if s.cfg.Heartbeat != nil {
				s.cfg.Heartbeat()
			}
		}
	}
}
