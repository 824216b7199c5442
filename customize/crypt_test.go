package customize

import (
	"imgtool/internal/testimg"
	"os/exec"
	"strings"
	"testing"
)

// The test vectors of the SHA-crypt specification.
func TestSHA512CryptSpecVectors(t *testing.T) {
	for _, c := range []struct {
		salt, key, want string
		rounds          int
	}{
		{"saltstring", "Hello world!", "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1", 0},
		{"saltstringsaltstring", "Hello world!", "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.", 10000},
		{"roundstoolow", "the minimum number is still observed", "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.", 10},
	} {
		if got := SHA512Crypt(c.key, c.salt, c.rounds); got != c.want {
			t.Errorf("SHA512Crypt(%q, %q, %d) = %s, want %s", c.key, c.salt, c.rounds, got, c.want)
		}
	}
}

// openssl passwd -6 is an independent implementation.
func TestSHA512CryptOpenSSL(t *testing.T) {
	testimg.NeedTools(t, "openssl")
	for _, c := range []struct{ pw, salt string }{
		{"raspberry", "abcdefgh"},
		{strings.Repeat("long password ", 12), "0123456789ABCDEF"},
		{"pässwörd", "./Zz09"},
	} {
		out, err := exec.Command("openssl", "passwd", "-6", "-salt", c.salt, c.pw).Output()
		if err != nil {
			t.Fatal(err)
		}
		want := strings.TrimSpace(string(out))
		if got := SHA512Crypt(c.pw, c.salt, 0); got != want {
			t.Errorf("SHA512Crypt(%q, %q) = %s, openssl says %s", c.pw, c.salt, got, want)
		}
		if !VerifyPassword(want, c.pw) || VerifyPassword(want, c.pw+"x") {
			t.Errorf("VerifyPassword disagrees on %s", want)
		}
	}
	h, err := HashPassword("secret")
	if err != nil || !VerifyPassword(h, "secret") || CheckHash(h) != nil {
		t.Errorf("HashPassword: %s %v", h, err)
	}
	if CheckHash("$5$abc$def") == nil || CheckHash("plain") == nil {
		t.Error("CheckHash accepts non-$6$ strings")
	}
}

// IEEE 802.11i-2004 annex H.4 test vectors, and wpa_passphrase when present.
func TestWPAPSK(t *testing.T) {
	for _, c := range []struct{ pass, ssid, want string }{
		{"password", "IEEE", "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"},
		{"ThisIsAPassword", "ThisIsASSID", "0dc0d6eb90555ed6419756b9a15ec3e3209b63df707dd508d14581f8982721af"},
	} {
		got, err := WPAPSK(c.pass, c.ssid)
		if err != nil || got != c.want {
			t.Errorf("WPAPSK(%q, %q) = %s, %v; want %s", c.pass, c.ssid, got, err, c.want)
		}
	}
	if _, err := WPAPSK("short", "x"); err == nil {
		t.Error("7-character passphrase accepted")
	}
	if p, err := exec.LookPath("wpa_passphrase"); err == nil {
		out, err := exec.Command(p, "My Net", "correct horse").Output()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := WPAPSK("correct horse", "My Net")
		if !strings.Contains(string(out), "\tpsk="+got+"\n") {
			t.Errorf("wpa_passphrase says\n%s\nwe say %s", out, got)
		}
	}
}
