package wire

import (
	"encoding/binary"
	"slices"

	"github.com/fleettop/fleettop/fleet"
)

// A Hello's node and its devices are coded field by field, in the order of
// helloFields and deviceFields: the one place that says how each field of
// fleet.Node and fleet.Device crosses the wire. Adding a field is one entry
// at the end of a table, with the protocol version that introduces it
// (since), and a line in the format description in codec.go.

// nodeField codes one part of a Hello's node.
type nodeField struct {
	name  string
	since uint8 // the first protocol version that carries it
	enc   func(dst []byte, n *fleet.Node) ([]byte, *codecError)
	dec   func(r *reader, n *fleet.Node)
}

// deviceField codes one part of a device in a Hello.
type deviceField struct {
	name string
	enc  func(dst []byte, d *fleet.Device) ([]byte, *codecError)
	dec  func(r *reader, d *fleet.Device)
}

// strKind says how a string field is decoded.
type strKind uint8

const (
	own    strKind = iota // a copy of its own (ids, hostnames)
	vocab                 // a small fixed vocabulary: the common values allocate nothing
	common                // held alike by many nodes: one string for all (sharedString)
)

// str codes the string field at p.
func str[T any](name string, kind strKind, p func(*T) *string) (
	func([]byte, *T) ([]byte, *codecError), func(*reader, *T)) {
	enc := func(dst []byte, x *T) ([]byte, *codecError) { return appendString(dst, name, *p(x)) }
	dec := func(r *reader, x *T) { *p(x) = r.string(name) }
	switch kind {
	case vocab:
		dec = func(r *reader, x *T) { *p(x) = r.internedString(name) }
	case common:
		dec = func(r *reader, x *T) { *p(x) = r.sharedString(name) }
	}
	return enc, dec
}

func nodeStr(name string, kind strKind, p func(*fleet.Node) *string) nodeField {
	enc, dec := str(name, kind, p)
	return nodeField{name: name, since: 1, enc: enc, dec: dec}
}

func deviceStr(name string, kind strKind, p func(*fleet.Device) *string) deviceField {
	enc, dec := str(name, kind, p)
	return deviceField{name: name, enc: enc, dec: dec}
}

var helloFields = []nodeField{
	nodeStr("node id", own, func(n *fleet.Node) *string { return &n.ID }),
	nodeStr("hostname", own, func(n *fleet.Node) *string { return &n.Hostname }),
	nodeStr("region", common, func(n *fleet.Node) *string { return &n.Region }),
	nodeStr("site", common, func(n *fleet.Node) *string { return &n.Site }),
	nodeStr("provider", common, func(n *fleet.Node) *string { return &n.Provider }),
	nodeStr("jurisdiction", common, func(n *fleet.Node) *string { return &n.Jurisdiction }),
	nodeStr("lease id", own, func(n *fleet.Node) *string { return &n.Lease.ID }),
	{name: "lease price", since: 1,
		enc: func(dst []byte, n *fleet.Node) ([]byte, *codecError) {
			return binary.AppendVarint(dst, n.Lease.PricePerGPUHour.Micros), nil
		},
		dec: func(r *reader, n *fleet.Node) { n.Lease.PricePerGPUHour.Micros = r.varint() }},
	nodeStr("lease currency", vocab, func(n *fleet.Node) *string { return &n.Lease.PricePerGPUHour.Currency }),
	nodeStr("lease billing", common, func(n *fleet.Node) *string { return (*string)(&n.Lease.Billing) }),
	{name: "lease flags", since: 1, enc: appendLeaseFlags, dec: decodeLeaseFlags},
	{name: "labels", since: 1, enc: appendLabels, dec: decodeLabels},
	nodeStr("driver", common, func(n *fleet.Node) *string { return &n.Driver }),
	nodeStr("cuda", common, func(n *fleet.Node) *string { return &n.CUDA }),
	nodeStr("boot id", own, func(n *fleet.Node) *string { return &n.BootID }),
	nodeStr("agent version", common, func(n *fleet.Node) *string { return &n.AgentVersion }),
	{name: "devices", since: 1, enc: appendDevices, dec: decodeDevices},
	// Protocol 1 ends after the devices.
	{name: "lease gpus", since: 2,
		enc: func(dst []byte, n *fleet.Node) ([]byte, *codecError) {
			if n.Lease.GPUs < 0 || n.Lease.GPUs > MaxDevices {
				return dst, errf(ErrMalformed, "lease gpus %d outside 0..%d", n.Lease.GPUs, MaxDevices)
			}
			return binary.AppendUvarint(dst, uint64(n.Lease.GPUs)), nil
		},
		dec: func(r *reader, n *fleet.Node) {
			g := r.uvarint()
			if r.err == nil && g > MaxDevices {
				r.fail(ErrMalformed, "lease gpus %d exceeds %d", g, MaxDevices)
			}
			n.Lease.GPUs = int(g)
		}},
	{name: "sources", since: 2,
		enc: func(dst []byte, n *fleet.Node) ([]byte, *codecError) { return appendSources(dst, n.Sources) },
		dec: func(r *reader, n *fleet.Node) { n.Sources = decodeSources(r) }},
}

// deviceFields follow the device index, which is checked against the
// other devices' (appendDevices, decodeDevices).
var deviceFields = []deviceField{
	deviceStr("device uuid", own, func(d *fleet.Device) *string { return &d.UUID }),
	deviceStr("device vendor", vocab, func(d *fleet.Device) *string { return (*string)(&d.Vendor) }),
	deviceStr("device model", common, func(d *fleet.Device) *string { return &d.Model }),
	deviceStr("device pci bus id", own, func(d *fleet.Device) *string { return &d.PCIBusID }),
	{name: "memory total",
		enc: func(dst []byte, d *fleet.Device) ([]byte, *codecError) {
			return binary.AppendUvarint(dst, d.MemoryTotal), nil
		},
		dec: func(r *reader, d *fleet.Device) { d.MemoryTotal = r.uvarint() }},
	{name: "power limit",
		enc: func(dst []byte, d *fleet.Device) ([]byte, *codecError) {
			pl, ok := steps(d.PowerLimit, powerLimitScale, maxFracSteps)
			if !ok {
				return dst, errf(ErrMalformed, "power limit %v is not finite or out of range", d.PowerLimit)
			}
			return binary.AppendVarint(dst, pl), nil
		},
		dec: func(r *reader, d *fleet.Device) {
			pl := r.varint()
			if r.err == nil && (pl > maxFracSteps || pl < -maxFracSteps) {
				r.fail(ErrMalformed, "power limit out of range")
			}
			d.PowerLimit = unsteps(pl, powerLimitScale)
		}},
	{name: "device flags", enc: appendDeviceFlags, dec: decodeDeviceFlags},
}

func appendHello(dst []byte, h *Hello, v uint8) ([]byte, *codecError) {
	dst = binary.AppendUvarint(dst, uint64(h.Proto))
	for i := range helloFields {
		f := &helloFields[i]
		if v < f.since {
			break
		}
		var err *codecError
		if dst, err = f.enc(dst, &h.Node); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

func decodeHello(r *reader, h *Hello, v uint8) {
	p := r.uvarint()
	if r.err == nil && p > 0xFFFF {
		r.fail(ErrMalformed, "protocol %d exceeds 65535", p)
	}
	h.Proto = uint16(p)
	for i := range helloFields {
		f := &helloFields[i]
		if r.err != nil || v < f.since {
			return
		}
		f.dec(r, &h.Node)
	}
}

func appendLeaseFlags(dst []byte, n *fleet.Node) ([]byte, *codecError) {
	var lf byte
	if n.Lease.Reserved {
		lf |= leaseReserved
	}
	if !n.Lease.Start.IsZero() {
		lf |= leaseStart
	}
	if !n.Lease.End.IsZero() {
		lf |= leaseEnd
	}
	dst = append(dst, lf)
	if lf&leaseStart != 0 {
		dst = binary.AppendVarint(dst, n.Lease.Start.UnixMilli())
	}
	if lf&leaseEnd != 0 {
		dst = binary.AppendVarint(dst, n.Lease.End.UnixMilli())
	}
	return dst, nil
}

func decodeLeaseFlags(r *reader, n *fleet.Node) {
	lf := r.byte()
	if r.err != nil {
		return
	}
	if lf&^(leaseReserved|leaseStart|leaseEnd) != 0 {
		r.fail(ErrMalformed, "unknown lease flags %#02x", lf)
		return
	}
	n.Lease.Reserved = lf&leaseReserved != 0
	if lf&leaseStart != 0 {
		n.Lease.Start = r.timeMs()
	}
	if lf&leaseEnd != 0 {
		n.Lease.End = r.timeMs()
	}
}

// appendLabels writes the labels in strictly increasing key order.
func appendLabels(dst []byte, n *fleet.Node) ([]byte, *codecError) {
	if len(n.Labels) > MaxLabels {
		return dst, errf(ErrTooBig, "label count %d exceeds %d", len(n.Labels), MaxLabels)
	}
	dst = binary.AppendUvarint(dst, uint64(len(n.Labels)))
	keys := make([]string, 0, len(n.Labels))
	for k := range n.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var err *codecError
	for _, k := range keys {
		if dst, err = appendString(dst, "label key", k); err != nil {
			return dst, err
		}
		if dst, err = appendString(dst, "label "+k, n.Labels[k]); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

func decodeLabels(r *reader, n *fleet.Node) {
	nl := r.count("label count", MaxLabels)
	if nl == 0 {
		return
	}
	n.Labels = make(map[string]string, nl)
	prev := ""
	for i := range nl {
		k := r.sharedString("label key")
		v := r.sharedString("label value")
		if r.err != nil {
			return
		}
		if i > 0 && k <= prev {
			r.fail(ErrMalformed, "label %q out of order or repeated", k)
			return
		}
		n.Labels[k], prev = v, k
	}
}

func appendDevices(dst []byte, n *fleet.Node) ([]byte, *codecError) {
	if len(n.Devices) > MaxDevices {
		return dst, errf(ErrTooBig, "device count %d exceeds %d", len(n.Devices), MaxDevices)
	}
	dst = binary.AppendUvarint(dst, uint64(len(n.Devices)))
	var seen uint64
	for i := range n.Devices {
		d := &n.Devices[i]
		if d.Index < 0 || d.Index >= MaxDevices {
			return dst, errf(ErrMalformed, "device index %d outside 0..%d", d.Index, MaxDevices-1)
		}
		if seen&(1<<d.Index) != 0 {
			return dst, errf(ErrMalformed, "device index %d repeated", d.Index)
		}
		seen |= 1 << d.Index
		dst = binary.AppendUvarint(dst, uint64(d.Index))
		for j := range deviceFields {
			var err *codecError
			if dst, err = deviceFields[j].enc(dst, d); err != nil {
				return dst, err.in("device %d", d.Index)
			}
		}
	}
	return dst, nil
}

func decodeDevices(r *reader, n *fleet.Node) {
	nd := r.count("device count", MaxDevices)
	if nd == 0 {
		return
	}
	n.Devices = make([]fleet.Device, nd)
	var seen uint64
	for i := range n.Devices {
		d := &n.Devices[i]
		idx, ok := r.deviceIndex(&seen)
		if !ok {
			return
		}
		d.Index = int(idx)
		for j := range deviceFields {
			deviceFields[j].dec(r, d)
		}
		if r.err != nil {
			r.err.in("device %d", idx)
			return
		}
	}
}

func appendDeviceFlags(dst []byte, d *fleet.Device) ([]byte, *codecError) {
	var df byte
	if d.MIG {
		df |= deviceMIG
	}
	if d.IsInstance() {
		df |= deviceInstance
	}
	dst = append(dst, df)
	if !d.IsInstance() {
		return dst, nil
	}
	in := &d.Instance
	if in.Parent < 0 || in.Parent >= MaxDevices || in.GPUInstanceID < 0 || in.ComputeInstanceID < 0 {
		return dst, errf(ErrMalformed, "MIG instance parent %d, ids %d/%d out of range",
			in.Parent, in.GPUInstanceID, in.ComputeInstanceID)
	}
	dst = binary.AppendUvarint(dst, uint64(in.Parent))
	dst = binary.AppendUvarint(dst, uint64(in.GPUInstanceID))
	dst = binary.AppendUvarint(dst, uint64(in.ComputeInstanceID))
	return appendString(dst, "device MIG profile", in.Profile)
}

func decodeDeviceFlags(r *reader, d *fleet.Device) {
	df := r.byte()
	if r.err == nil && df&^(deviceMIG|deviceInstance) != 0 {
		r.fail(ErrMalformed, "unknown device flags %#02x", df)
	}
	if r.err != nil {
		return
	}
	d.MIG = df&deviceMIG != 0
	if df&deviceInstance == 0 {
		return
	}
	parent, gi, ci := r.uvarint(), r.uvarint(), r.uvarint()
	d.Instance.Profile = r.string("device MIG profile")
	if r.err == nil && (parent >= MaxDevices || gi > 1<<20 || ci > 1<<20 || d.Instance.Profile == "") {
		r.fail(ErrMalformed, "MIG instance parent %d, ids %d/%d or empty profile", parent, gi, ci)
	}
	d.Instance.Parent, d.Instance.GPUInstanceID, d.Instance.ComputeInstanceID = int(parent), int(gi), int(ci)
}
