package hub_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pigment-sd/pigment/hub"
	"github.com/pigment-sd/pigment/hub/hubtest"
)

func ExampleClient_Snapshot() {
	// A fake Hub stands in for huggingface.co; a program would use
	// hub.NewClient(hub.OptionsFromEnv(os.Getenv)).
	srv := hubtest.Start(hubtest.DiffusersFiles(), hubtest.Options{})
	defer srv.Close()
	cache, _ := os.MkdirTemp("", "hub-example")
	defer os.RemoveAll(cache)

	opts := hub.OptionsFromEnv(func(string) string { return "" })
	opts.Endpoint, opts.CacheDir = srv.URL, cache
	opts.Progress = func(ev hub.ProgressEvent) {
		if ev.Finished {
			fmt.Printf("%s: %d bytes\n", ev.File, ev.Done)
		}
	}
	opts.Concurrency = 1 // one file at a time, so that the output is in order
	c := hub.NewClient(opts)

	dir, err := c.Snapshot(context.Background(), srv.RepoID, "main", hub.SnapshotOptions{
		Include: []string{"unet/*", "*.json"},
		Exclude: []string{"*.fp16.*", "*non_ema*", "feature_extractor/", "tokenizer/"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	rel, _ := filepath.Rel(cache, dir)
	fmt.Println(filepath.Dir(filepath.ToSlash(rel)))
	// Output:
	// model_index.json: 74 bytes
	// scheduler/scheduler_config.json: 61 bytes
	// text_encoder/config.json: 19 bytes
	// unet/config.json: 18 bytes
	// unet/diffusion_pytorch_model.safetensors: 20000 bytes
	// vae/config.json: 22 bytes
	// models--pigment-test--tiny-model/snapshots
}
