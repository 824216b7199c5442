package customize

import (
	"crypto/pbkdf2"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
)

// WPAPSK returns the WPA pre-shared key for a passphrase and SSID as 64
// hexadecimal digits: PBKDF2-HMAC-SHA1(passphrase, ssid, 4096 rounds, 32
// bytes), as IEEE 802.11i annex H defines it and wpa_passphrase prints it.
// The passphrase must be 8 to 63 printable ASCII characters and the SSID
// 1 to 32 bytes.
func WPAPSK(passphrase, ssid string) (string, error) {
	if len(passphrase) < 8 || len(passphrase) > 63 {
		return "", fmt.Errorf("customize: a WPA passphrase has 8 to 63 characters, not %d", len(passphrase))
	}
	for _, c := range []byte(passphrase) {
		if c < 32 || c > 126 {
			return "", fmt.Errorf("customize: a WPA passphrase holds printable ASCII characters only")
		}
	}
	if len(ssid) == 0 || len(ssid) > 32 {
		return "", fmt.Errorf("customize: an SSID has 1 to 32 bytes, not %d", len(ssid))
	}
	k, err := pbkdf2.Key(sha1.New, passphrase, []byte(ssid), 4096, 32)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(k), nil
}
