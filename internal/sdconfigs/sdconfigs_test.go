package sdconfigs

import (
	"encoding/json"
	"testing"
)

func TestEmbedded(t *testing.T) {
	names := Names()
	if len(names) != 3 {
		t.Fatalf("models %v", names)
	}
	for _, m := range names {
		for _, p := range []string{"model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json", "scheduler/scheduler_config.json"} {
			b, err := File(m, p)
			if err != nil {
				t.Fatal(err)
			}
			var v map[string]any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatalf("%s/%s: %v", m, p, err)
			}
		}
	}
	if _, err := File("nope", "unet/config.json"); err == nil {
		t.Fatal("missing model accepted")
	}
}
