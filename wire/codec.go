package wire

// PLACEHOLDER: the binary codec lands with the wire work. These signatures are
// the contract other packages build against.

import (
	"errors"

	"github.com/fleettop/fleettop/fleet"
)

var errTODO = errors.New("wire codec not implemented yet")

// Encoder encodes frames for one connection; it keeps per-connection delta
// state, so frames must be decoded in the order they were encoded, by one
// Decoder. Not safe for concurrent use.
type Encoder struct{}

// NewEncoder returns an encoder with fresh per-connection state.
func NewEncoder() *Encoder { return &Encoder{} }

// AppendFrame appends the encoding of f to dst and returns the extended slice.
func (e *Encoder) AppendFrame(dst []byte, f Frame) ([]byte, error) { return dst, errTODO }

// Decoder decodes the frames of one connection. Not safe for concurrent use.
type Decoder struct{}

// NewDecoder returns a decoder with fresh per-connection state.
func NewDecoder() *Decoder { return &Decoder{} }

// Decode decodes one frame. Returned frames may alias the decoder's internal
// buffers and are valid until the next call to Decode.
func (d *Decoder) Decode(b []byte) (Frame, error) { return nil, errTODO }

// AppendRecord appends a self-contained (stateless) encoding of one sample,
// for the collector's spool.
func AppendRecord(dst []byte, s *fleet.Sample) ([]byte, error) { return dst, errTODO }

// DecodeRecord decodes a record written by AppendRecord.
func DecodeRecord(b []byte, s *fleet.Sample) error { return errTODO }
