package component

import "testing"

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		in      string
		network Name
		folder  Name
		ok      bool
	}{
		{"unet", UNet, UNet, true},
		{"vae-decoder", VAEDecoder, VAE, true},
		{"VAE_ENCODER", VAEEncoder, VAE, true},
		{"text_encoder", TextEncoder, TextEncoder, true},
		{"vae", "", "", false},
		{"safety_checker", "", "", false},
	} {
		n, err := ParseNetwork(tc.in)
		if (err == nil) != tc.ok || n != tc.network {
			t.Errorf("ParseNetwork(%q) = %q, %v", tc.in, n, err)
			continue
		}
		if tc.ok && n.Folder() != tc.folder {
			t.Errorf("%s.Folder() = %s, want %s", n, n.Folder(), tc.folder)
		}
	}
	if f, err := ParseFolder("vae"); err != nil || f != VAE {
		t.Errorf("ParseFolder(vae) = %q, %v", f, err)
	}
	if _, err := ParseFolder("vae_decoder"); err == nil {
		t.Error("ParseFolder accepted a network that is not a folder")
	}
	for _, n := range Networks() {
		if !n.Folder().IsFolder() {
			t.Errorf("network %s lives in %s, not a folder", n, n.Folder())
		}
	}
}
