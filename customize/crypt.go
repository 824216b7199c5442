package customize

import (
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"strconv"
	"strings"
)

// sha512-crypt ("$6$"), as specified in "Unix crypt using SHA-256 and
// SHA-512" (Drepper, 2007), the format glibc's crypt(3) reads.

const (
	cryptAlphabet     = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	defaultRounds     = 5000
	minRounds         = 1000
	maxRounds         = 999999999
	maxSaltLen        = 16
	saltGeneratedSize = 16
)

// ErrBadHash is returned for a string that is not a sha512-crypt hash.
var ErrBadHash = errors.New("customize: not a sha512-crypt ($6$) hash")

// SHA512Crypt hashes password with salt (at most 16 characters are used)
// and rounds (0 means the default 5000, which is then left out of the
// result) and returns "$6$[rounds=N$]salt$hash".
func SHA512Crypt(password, salt string, rounds int) string {
	explicit := rounds != 0
	if rounds == 0 {
		rounds = defaultRounds
	}
	rounds = min(max(rounds, minRounds), maxRounds)
	if len(salt) > maxSaltLen {
		salt = salt[:maxSaltLen]
	}
	p, s := []byte(password), []byte(salt)

	b := sha512.New()
	b.Write(p)
	b.Write(s)
	b.Write(p)
	sumB := b.Sum(nil)

	a := sha512.New()
	a.Write(p)
	a.Write(s)
	for n := len(p); n > 0; n -= 64 {
		a.Write(sumB[:min(n, 64)])
	}
	for n := len(p); n > 0; n >>= 1 {
		if n&1 != 0 {
			a.Write(sumB)
		} else {
			a.Write(p)
		}
	}
	sumA := a.Sum(nil)

	dp := sha512.New()
	for range len(p) {
		dp.Write(p)
	}
	sumDP := dp.Sum(nil)
	pSeq := make([]byte, 0, len(p))
	for n := len(p); n > 0; n -= 64 {
		pSeq = append(pSeq, sumDP[:min(n, 64)]...)
	}

	ds := sha512.New()
	for range 16 + int(sumA[0]) {
		ds.Write(s)
	}
	sumDS := ds.Sum(nil)
	sSeq := make([]byte, 0, len(s))
	for n := len(s); n > 0; n -= 64 {
		sSeq = append(sSeq, sumDS[:min(n, 64)]...)
	}

	c := sumA
	for i := range rounds {
		h := sha512.New()
		if i&1 != 0 {
			h.Write(pSeq)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(sSeq)
		}
		if i%7 != 0 {
			h.Write(pSeq)
		}
		if i&1 != 0 {
			h.Write(c)
		} else {
			h.Write(pSeq)
		}
		c = h.Sum(nil)
	}

	var out strings.Builder
	out.WriteString("$6$")
	if explicit {
		out.WriteString("rounds=" + strconv.Itoa(rounds) + "$")
	}
	out.WriteString(salt)
	out.WriteByte('$')
	enc := func(b2, b1, b0 byte, n int) {
		w := uint(b2)<<16 | uint(b1)<<8 | uint(b0)
		for ; n > 0; n-- {
			out.WriteByte(cryptAlphabet[w&0x3f])
			w >>= 6
		}
	}
	for i := range 21 {
		x, y, z := i, i+21, i+42
		switch i % 3 {
		case 1:
			x, y, z = i+21, i+42, i
		case 2:
			x, y, z = i+42, i, i+21
		}
		enc(c[x], c[y], c[z], 4)
	}
	enc(0, 0, c[63], 2)
	return out.String()
}

// NewSalt returns a random 16-character salt from the crypt alphabet.
func NewSalt() (string, error) {
	b := make([]byte, saltGeneratedSize)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	for i := range b {
		b[i] = cryptAlphabet[int(b[i])%len(cryptAlphabet)]
	}
	return string(b), nil
}

// HashPassword hashes password with sha512-crypt and a random salt.
func HashPassword(password string) (string, error) {
	salt, err := NewSalt()
	if err != nil {
		return "", err
	}
	return SHA512Crypt(password, salt, 0), nil
}

// parseHash splits "$6$[rounds=N$]salt$hash" into salt and rounds (0 when
// the default).
func parseHash(hash string) (salt string, rounds int, err error) {
	rest, ok := strings.CutPrefix(hash, "$6$")
	if !ok {
		return "", 0, ErrBadHash
	}
	if r, ok := strings.CutPrefix(rest, "rounds="); ok {
		num, tail, ok := strings.Cut(r, "$")
		if !ok {
			return "", 0, ErrBadHash
		}
		if rounds, err = strconv.Atoi(num); err != nil || rounds <= 0 {
			return "", 0, ErrBadHash
		}
		rest = tail
	}
	salt, sum, ok := strings.Cut(rest, "$")
	if !ok || len(sum) != 86 || len(salt) > maxSaltLen {
		return "", 0, ErrBadHash
	}
	for _, ch := range salt + sum {
		if ch == ':' || ch == '\n' || ch == '$' {
			return "", 0, ErrBadHash
		}
	}
	return salt, rounds, nil
}

// CheckHash reports whether hash is a well-formed sha512-crypt hash.
func CheckHash(hash string) error {
	_, _, err := parseHash(hash)
	return err
}

// VerifyPassword reports whether password matches the sha512-crypt hash.
func VerifyPassword(hash, password string) bool {
	salt, rounds, err := parseHash(hash)
	if err != nil {
		return false
	}
	return SHA512Crypt(password, salt, rounds) == hash
}
