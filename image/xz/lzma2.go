package xz

// An LZMA2 decoder for whole blocks of known size.
//
// decodeLZMA2 decodes the LZMA2 data of one block straight into the
// caller's buffer, whose length is the block's uncompressed size from the
// index. The buffer is the dictionary: matches copy from earlier bytes of
// the same buffer and uncompressed chunks are copied into it, so nothing
// is copied twice and no circular buffer is needed.
//
// # LZMA2 (xz file format, 5.3.1)
//
// LZMA2 data is a sequence of chunks, each starting with a control byte:
//
//	0x00           end of the data
//	0x01           uncompressed chunk, dictionary reset
//	0x02           uncompressed chunk, no reset
//	0x03 to 0x7F   invalid
//	0x80 to 0xFF   LZMA chunk; bits 5-6 give the reset:
//	               0 nothing, 1 state reset, 2 state reset and new
//	               properties, 3 all of these and a dictionary reset;
//	               bits 0-4 are bits 16-20 of the uncompressed size - 1
//
// An uncompressed chunk continues with its size - 1 (two bytes, big
// endian) and the data. An LZMA chunk continues with bits 0-15 of its
// uncompressed size - 1 (two bytes, big endian), its compressed size - 1
// (two bytes, big endian), and, for a reset of kind 2 or 3, the properties
// byte (pb * 5 + lp) * 9 + lc, with lc + lp <= 4 and pb <= 4. The first
// chunk must reset the dictionary; an LZMA chunk must give properties
// after a dictionary reset and before any LZMA chunk that keeps the state.
// A state reset clears the probabilities, the state and the four recent
// distances; an LZMA chunk without one continues them, even across
// uncompressed chunks.
//
// # LZMA
//
// The compressed data of an LZMA chunk is read by a range decoder: its
// first byte must be zero, the next four are the initial code, the range
// starts at 0xFFFFFFFF, and whenever the range falls below 2^24 it is
// shifted left by eight bits and another byte is shifted into the code.
// Bits are decoded with 11-bit probabilities (of a zero bit, initially
// 1024, moving by 1/32 towards the decoded value) or directly, with
// probability one half. Each chunk's data must end exactly where its
// compressed size says, with a code of zero, once the chunk's
// uncompressed size is reached; a match may not cross the end of a chunk
// and the end-of-payload marker (distance 0xFFFFFFFF) is not allowed.
//
// The decoder keeps a state (0-11) that tells what the recent packets
// were, and four recent distances rep0-rep3. The position within the data
// since the last dictionary reset gives posState (its low pb bits) and,
// with the previous byte, the literal context. Each packet is:
//
//	0 + byte              literal
//	1 0 + len + dist      match; the distances shift, rep0 = dist
//	1 1 0 0               short rep: one byte at distance rep0
//	1 1 0 1 + len         rep0 match
//	1 1 1 0 + len         rep1 match (moved to rep0)
//	1 1 1 1 0 + len       rep2 match (moved to rep0)
//	1 1 1 1 1 + len       rep3 match (moved to rep0)
//
// A literal is an 8-bit tree in one of 2^(lc+lp) tables of 0x300
// probabilities, picked by the low lp bits of the position and the high
// lc bits of the previous byte; after a match (state 7 or more) its bits
// are first decoded against the byte at distance rep0, with separate
// probabilities, as long as they agree with it. A length (2-273) is a
// choice bit, then 3 bits (2-9, per posState), or a second choice bit and
// 3 bits (10-17, per posState), or 8 bits (18-273). A distance is a 6-bit
// slot (picked by the length: 2, 3, 4, 5 or more); slots 0-3 are the
// distance itself, a larger slot gives the top two bits and a number of
// lower bits, decoded as a reverse bit tree below slot 14, else as direct
// bits followed by four reverse-tree "aligned" bits. A distance must lie
// within the data decoded since the last dictionary reset and within the
// dictionary size.

// lzma2Error describes malformed LZMA2 data.
type lzma2Error struct {
	off  int // offset in the compressed data
	kind lzma2ErrKind
	msg  string
}

type lzma2ErrKind int

const (
	errCorrupt   lzma2ErrKind = iota
	errTruncated              // the data ends before its end
	errSize                   // the data decodes to more or fewer bytes than expected
	errDict                   // a distance beyond the dictionary size
	errStrict                 // accepted by lenient decoders, refused by the format
)

func (e *lzma2Error) Error() string { return e.msg }

func lzErr(off int, kind lzma2ErrKind, format string, args ...any) error {
	return &lzma2Error{off: off, kind: kind, msg: sprintf(format, args...)}
}

// Probability model layout: one flat array, at these offsets.
const (
	lzStates       = 12
	lzPosStatesMax = 16

	probInit = 1024

	offIsMatch    = 0
	offIsRep      = offIsMatch + lzStates*lzPosStatesMax
	offIsRepG0    = offIsRep + lzStates
	offIsRepG1    = offIsRepG0 + lzStates
	offIsRepG2    = offIsRepG1 + lzStates
	offIsRep0Long = offIsRepG2 + lzStates
	offPosSlot    = offIsRep0Long + lzStates*lzPosStatesMax
	offPosSpecial = offPosSlot + 4*64
	offAlign      = offPosSpecial + 115
	offMatchLen   = offAlign + 16
	offRepLen     = offMatchLen + lenProbs
	offLiteral    = offRepLen + lenProbs
	numProbs      = offLiteral + 0x300<<4

	// Within a length coder.
	lenChoice  = 0
	lenChoice2 = 1
	lenLow     = 2
	lenMid     = lenLow + lzPosStatesMax*8
	lenHigh    = lenMid + lzPosStatesMax*8
	lenProbs   = lenHigh + 256

	maxChunkPacked = 1 << 16
	// chunkSlack bounds the bytes one packet can read past the end of a
	// chunk's data: one per decoded bit, about 60 for the longest match.
	chunkSlack = 256
)

// lzmaDecoder holds the range decoder and the model of one LZMA2 stream.
type lzmaDecoder struct {
	// range decoder
	buf  [2 * maxChunkPacked]byte // the current chunk's compressed data, then zeros
	ip   int                      // next byte of buf; past the data when it ran out
	rng  uint32
	code uint32

	// model
	lc, lp, pb uint
	state      int
	rep        [4]uint32 // distances - 1
	p          [numProbs]uint16
}

func (d *lzmaDecoder) resetState() {
	for i := range d.p {
		d.p[i] = probInit
	}
	d.state = 0
	d.rep = [4]uint32{}
}

// next returns the next compressed byte. Past the end of the chunk it
// returns zeros from the padding of buf; the decoding loop stops once the
// chunk's data has run out, well before the padding is used up.
func (d *lzmaDecoder) next() uint32 {
	b := d.buf[d.ip&(len(d.buf)-1)]
	d.ip++
	return uint32(b)
}

// bit decodes one bit with probability *p. The range is normalised
// before each bit rather than after it, and once more when a chunk ends,
// which reads the same bytes.
func (d *lzmaDecoder) bit(p *uint16) uint32 {
	if d.rng < 1<<24 {
		d.normalize()
	}
	v := uint32(*p)
	bound := (d.rng >> 11) * v
	if d.code < bound {
		d.rng = bound
		*p = uint16(v + (2048-v)>>5)
		return 0
	}
	d.rng -= bound
	d.code -= bound
	*p = uint16(v - v>>5)
	return 1
}

func (d *lzmaDecoder) normalize() {
	d.rng <<= 8
	d.code = d.code<<8 | d.next()
}

// tree decodes an n-bit symbol, high bit first, with probabilities
// p[1:1<<n]. The bit decoding of bit is repeated here (and in literal), on
// local copies of the range decoder: these are the inner loops.
func (d *lzmaDecoder) tree(p []uint16, n uint) uint32 {
	rng, code := d.rng, d.code
	m := uint32(1)
	for range n {
		if rng < 1<<24 {
			rng <<= 8
			code = code<<8 | d.next()
		}
		pp := &p[m&(1<<n-1)]
		v := uint32(*pp)
		bound := (rng >> 11) * v
		if code < bound {
			rng = bound
			*pp = uint16(v + (2048-v)>>5)
			m <<= 1
		} else {
			rng -= bound
			code -= bound
			*pp = uint16(v - v>>5)
			m = m<<1 | 1
		}
	}
	d.rng, d.code = rng, code
	return m - 1<<n
}

// literal decodes a literal with the probabilities p; with matched set,
// its bits are first decoded against those of the match byte mb.
func (d *lzmaDecoder) literal(p *[0x300]uint16, matched bool, mb uint32) byte {
	rng, code := d.rng, d.code
	sym := uint32(1)
	if matched {
		for sym < 0x100 {
			mbit := mb >> 7 & 1
			mb <<= 1
			if rng < 1<<24 {
				rng <<= 8
				code = code<<8 | d.next()
			}
			pp := &p[(1+mbit)<<8|sym]
			v := uint32(*pp)
			bound := (rng >> 11) * v
			var b uint32
			if code < bound {
				rng = bound
				*pp = uint16(v + (2048-v)>>5)
			} else {
				rng -= bound
				code -= bound
				*pp = uint16(v - v>>5)
				b = 1
			}
			sym = sym<<1 | b
			if b != mbit {
				break
			}
		}
	}
	for sym < 0x100 {
		if rng < 1<<24 {
			rng <<= 8
			code = code<<8 | d.next()
		}
		pp := &p[sym&0xFF]
		v := uint32(*pp)
		bound := (rng >> 11) * v
		if code < bound {
			rng = bound
			*pp = uint16(v + (2048-v)>>5)
			sym <<= 1
		} else {
			rng -= bound
			code -= bound
			*pp = uint16(v - v>>5)
			sym = sym<<1 | 1
		}
	}
	d.rng, d.code = rng, code
	return byte(sym)
}

// reverse decodes an n-bit symbol, low bit first, with probabilities p[1:1<<n].
func (d *lzmaDecoder) reverse(p []uint16, n uint) uint32 {
	m, sym := uint32(1), uint32(0)
	for i := range n {
		b := d.bit(&p[m&(1<<n-1)])
		m = m<<1 | b
		sym |= b << i
	}
	return sym
}

// length decodes a match length minus 2 (0-271) with the length coder at p.
func (d *lzmaDecoder) length(p []uint16, posState int) int {
	p = p[:lenProbs]
	if d.bit(&p[lenChoice]) == 0 {
		return int(d.tree(p[lenLow+posState*8:][:8], 3))
	}
	if d.bit(&p[lenChoice2]) == 0 {
		return 8 + int(d.tree(p[lenMid+posState*8:][:8], 3))
	}
	return 16 + int(d.tree(p[lenHigh:][:256], 8))
}

// distance decodes a match distance minus 1; lenState is min(length-2, 3).
func (d *lzmaDecoder) distance(lenState int) uint32 {
	slot := d.tree(d.p[offPosSlot+lenState*64:][:64], 6)
	if slot < 4 {
		return slot
	}
	n := uint(slot>>1 - 1)
	dist := (2 | slot&1) << n
	if slot < 14 {
		return dist + d.reverse(d.p[offPosSpecial+int(dist-slot)-1:][:1<<n], n)
	}
	var direct uint32
	for range n - 4 {
		if d.rng < 1<<24 {
			d.normalize()
		}
		d.rng >>= 1
		var b uint32
		if d.code >= d.rng {
			d.code -= d.rng
			b = 1
		}
		direct = direct<<1 | b
	}
	return dist + direct<<4 + d.reverse(d.p[offAlign-1:][:16], 4)
}

// decodeLZMA2 decodes src, a complete LZMA2 stream, into dst, which it must
// fill exactly. dictSize bounds match distances.
func decodeLZMA2(dst, src []byte, dictSize int64) error {
	d := new(lzmaDecoder)
	pos := 0       // next byte of dst
	dictStart := 0 // position of the last dictionary reset
	needDict, needProps := true, true
	sp := 0 // next byte of src
	for {
		if sp >= len(src) {
			return lzErr(sp, errTruncated, "LZMA2 data ends without its end marker")
		}
		c := src[sp]
		at := sp
		switch {
		case c == 0:
			if pos != len(dst) {
				return lzErr(at, errSize, "LZMA2 data ends after %d of the %d bytes expected", pos, len(dst))
			}
			if sp+1 != len(src) {
				return lzErr(sp+1, errSize, "%d bytes follow the end of the LZMA2 data", len(src)-sp-1)
			}
			return nil
		case c == 1 || c == 2:
			if sp+3 > len(src) {
				return lzErr(sp, errTruncated, "LZMA2 chunk header cut short")
			}
			n := int(src[sp+1])<<8 | int(src[sp+2]) + 1
			sp += 3
			if c == 1 {
				dictStart, needDict, needProps = pos, false, true
			} else if needDict {
				return lzErr(at, errCorrupt, "first LZMA2 chunk does not reset the dictionary")
			}
			if n > len(dst)-pos {
				return lzErr(at, errSize, "LZMA2 chunk of %d bytes goes past the %d bytes expected", n, len(dst))
			}
			if n > len(src)-sp {
				return lzErr(len(src), errTruncated, "uncompressed LZMA2 chunk cut short")
			}
			copy(dst[pos:pos+n], src[sp:sp+n])
			pos += n
			sp += n
		case c < 0x80:
			return lzErr(at, errCorrupt, "invalid LZMA2 control byte %#02x", c)
		default:
			hl := 5
			if c >= 0xC0 {
				hl = 6
			}
			if sp+hl > len(src) {
				return lzErr(sp, errTruncated, "LZMA2 chunk header cut short")
			}
			n := int(c&0x1F)<<16 | int(src[sp+1])<<8 | int(src[sp+2]) + 1
			packed := int(src[sp+3])<<8 | int(src[sp+4]) + 1
			reset := (c >> 5) & 3
			if reset == 3 {
				dictStart, needDict = pos, false
			} else if needDict {
				return lzErr(at, errCorrupt, "first LZMA2 chunk does not reset the dictionary")
			}
			if reset >= 2 {
				p := src[sp+5]
				if p >= 9*5*5 {
					return lzErr(sp+5, errCorrupt, "LZMA properties byte %#02x out of range", p)
				}
				lc, lp, pb := uint(p%9), uint(p/9%5), uint(p/45)
				if lc+lp > 4 {
					return lzErr(sp+5, errStrict, "LZMA properties lc=%d lp=%d: lc+lp is more than 4", lc, lp)
				}
				d.lc, d.lp, d.pb = lc, lp, pb
				needProps = false
			} else if needProps {
				return lzErr(at, errCorrupt, "LZMA2 chunk without the properties it needs")
			}
			if reset >= 1 {
				d.resetState()
			}
			sp += hl
			if n > len(dst)-pos {
				return lzErr(at, errSize, "LZMA2 chunk of %d bytes goes past the %d bytes expected", n, len(dst))
			}
			if packed > len(src)-sp {
				// Lenient decoders stop reading a chunk where its range
				// decoder stops and so do not notice this.
				return lzErr(len(src), errStrict, "LZMA2 chunk of %d compressed bytes runs past the end of the data", packed)
			}
			if err := d.chunk(dst[:pos+n], pos, dictStart, dictSize, src[sp:sp+packed], sp); err != nil {
				// The range decoder may have read past the chunk.
				e := err.(*lzma2Error)
				e.off = min(e.off, sp+packed)
				return e
			}
			pos += n
			sp += packed
		}
	}
}

// chunk decodes one LZMA chunk, in, into out[pos:] (filling out), with the
// data since dictStart as history. base is the offset of in within the
// stream, for errors.
func (d *lzmaDecoder) chunk(out []byte, pos, dictStart int, dictSize int64, in []byte, base int) error {
	if len(in) < 5 || in[0] != 0 {
		if len(in) < 5 {
			return lzErr(base, errCorrupt, "LZMA chunk of %d bytes is too short", len(in))
		}
		return lzErr(base, errCorrupt, "LZMA chunk does not start with a zero byte")
	}
	copy(d.buf[:], in)
	clear(d.buf[len(in) : len(in)+chunkSlack])
	d.ip = 5
	d.rng = 0xFFFFFFFF
	d.code = uint32(in[1])<<24 | uint32(in[2])<<16 | uint32(in[3])<<8 | uint32(in[4])
	if d.code == 0xFFFFFFFF {
		return lzErr(base, errCorrupt, "LZMA chunk starts with an invalid code")
	}
	lc, lpMask, pbMask := d.lc, 1<<d.lp-1, 1<<d.pb-1
	// maxDist is the largest distance - 1 allowed by the dictionary size.
	maxDist := uint32(min(max(dictSize, 1), 1<<32) - 1)
	state := d.state
	rep0, rep1, rep2, rep3 := d.rep[0], d.rep[1], d.rep[2], d.rep[3]
	end := len(out)
	for pos < end {
		if d.ip > len(in) {
			break
		}
		rel := pos - dictStart
		posState := rel & pbMask
		// The isMatch bit, as in bit, written out: one per packet.
		if d.rng < 1<<24 {
			d.normalize()
		}
		pm := &d.p[offIsMatch+state<<4+posState]
		v := uint32(*pm)
		bound := (d.rng >> 11) * v
		if d.code < bound {
			d.rng = bound
			*pm = uint16(v + (2048-v)>>5)
			// Literal.
			var prev uint
			if rel > 0 {
				prev = uint(out[pos-1])
			}
			lit := (*[0x300]uint16)(d.p[offLiteral+0x300*(rel&lpMask<<lc|int(prev>>(8-lc))):])
			var mb uint32
			if state >= 7 {
				if int64(rep0) >= int64(rel) {
					return lzErr(base+d.ip, errCorrupt, "LZMA match byte beyond the dictionary")
				}
				mb = uint32(out[pos-int(rep0)-1])
			}
			out[pos] = d.literal(lit, state >= 7, mb)
			pos++
			switch {
			case state < 4:
				state = 0
			case state < 10:
				state -= 3
			default:
				state -= 6
			}
			continue
		}
		d.rng -= bound
		d.code -= bound
		*pm = uint16(v - v>>5)
		var n int
		if d.bit(&d.p[offIsRep+state]) == 0 {
			// Match.
			rep3, rep2, rep1 = rep2, rep1, rep0
			n = d.length(d.p[offMatchLen:], posState)
			rep0 = d.distance(min(n, 3))
			if state < 7 {
				state = 7
			} else {
				state = 10
			}
			if rep0 == 0xFFFFFFFF {
				return lzErr(base+d.ip, errStrict, "end marker in LZMA2 data")
			}
			if rep0 > maxDist {
				return lzErr(base+d.ip, errDict, "match distance %d beyond the dictionary size %d", uint64(rep0)+1, dictSize)
			}
		} else {
			if d.bit(&d.p[offIsRepG0+state]) == 0 {
				if d.bit(&d.p[offIsRep0Long+state<<4+posState]) == 0 {
					// Short rep.
					if int64(rep0) >= int64(rel) {
						return lzErr(base+d.ip, errCorrupt, "match distance %d beyond the %d bytes decoded", uint64(rep0)+1, rel)
					}
					if state < 7 {
						state = 9
					} else {
						state = 11
					}
					out[pos] = out[pos-int(rep0)-1]
					pos++
					continue
				}
			} else {
				var dist uint32
				if d.bit(&d.p[offIsRepG1+state]) == 0 {
					dist = rep1
				} else {
					if d.bit(&d.p[offIsRepG2+state]) == 0 {
						dist = rep2
					} else {
						dist = rep3
						rep3 = rep2
					}
					rep2 = rep1
				}
				rep1 = rep0
				rep0 = dist
			}
			n = d.length(d.p[offRepLen:], posState)
			if state < 7 {
				state = 8
			} else {
				state = 11
			}
		}
		n += 2
		if int64(rep0) >= int64(rel) {
			return lzErr(base+d.ip, errCorrupt, "match distance %d beyond the %d bytes decoded", uint64(rep0)+1, rel)
		}
		if n > end-pos {
			return lzErr(base+d.ip, errSize, "LZMA match of %d bytes crosses the end of its chunk", n)
		}
		dist := int(rep0) + 1
		src := pos - dist
		if dist >= n {
			copy(out[pos:pos+n], out[src:src+n])
		} else if dist == 1 {
			b := out[src]
			s := out[pos : pos+n]
			for i := range s {
				s[i] = b
			}
		} else {
			// Overlapping: copy the period, then double what is copied.
			done := 0
			for done < n {
				done += copy(out[pos+done:pos+n], out[src:pos+done])
			}
		}
		pos += n
	}
	d.state = state
	d.rep = [4]uint32{rep0, rep1, rep2, rep3}
	if d.rng < 1<<24 {
		d.normalize()
	}
	if d.ip > len(in) {
		return lzErr(base+len(in), errTruncated, "LZMA chunk data ends early")
	}
	if d.ip != len(in) {
		return lzErr(base+d.ip, errStrict, "LZMA chunk ends %d bytes before its compressed size", len(in)-d.ip)
	}
	if d.code != 0 {
		return lzErr(base+d.ip, errStrict, "LZMA chunk ends with a non-zero code")
	}
	return nil
}
