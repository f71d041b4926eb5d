package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pigment-sd/pigment/catalog"
	"github.com/pigment-sd/pigment/format/pngmeta"
	"github.com/pigment-sd/pigment/format/safetensors"
	"github.com/pigment-sd/pigment/hub/hubtest"
	"github.com/pigment-sd/pigment/internal/fixtures"
	"github.com/pigment-sd/pigment/palette"
)

// runCLI runs pigment in-process with args and returns its output.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	err = root.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func tinyModel(t *testing.T, name string) string {
	return filepath.Dir(fixtures.Path(t, name+"/model_index.json"))
}

// pigment run reproduces every output of the reference file, within the
// fixtures' margin 1e-4 * max(1, std(ref)).
func TestRunReproducesRefs(t *testing.T) {
	model := tinyModel(t, "tiny-sd15")
	refs := filepath.Join(model, "refs.safetensors")
	ref, err := safetensors.Open(refs)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	for _, c := range []struct {
		component string
		outputs   []string
	}{
		{"text_encoder", []string{"text_encoder.last_hidden_state"}},
		{"unet", []string{"unet.out", "unet.t1.out"}},
		{"vae_decoder", []string{"vae.decode.out"}},
		{"vae_encoder", []string{"vae.encode.mean", "vae.encode.logvar", "vae.encode.std"}},
	} {
		out := filepath.Join(t.TempDir(), c.component+".safetensors")
		if _, stderr, err := runCLI(t, "run", "--model", model, "--component", c.component, "--inputs", refs, "--out", out); err != nil {
			t.Fatalf("%s: %v\n%s", c.component, err, stderr)
		}
		got, err := safetensors.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range c.outputs {
			g, _, err := got.Float32(name)
			if err != nil {
				t.Fatalf("%s: %v", c.component, err)
			}
			w, _, _ := ref.Float32(name)
			tol := 1e-4 * math.Max(1, stdDev(w))
			if d := maxDiff(g, w); d > tol {
				t.Errorf("%s: max |got-ref| %g > %g", name, d, tol)
			}
		}
		got.Close()
	}
}

func stdDev(x []float32) float64 {
	var s, s2 float64
	for _, v := range x {
		s += float64(v)
		s2 += float64(v) * float64(v)
	}
	n := float64(len(x))
	return math.Sqrt(math.Max(0, s2/n-(s/n)*(s/n)))
}

func maxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

// generate reproduces the e2e reference image for prompt + seed and stores
// the parameters AUTOMATIC1111's way.
func TestGenerateMatchesReference(t *testing.T) {
	model := tinyModel(t, "tiny-sd15")
	refPNG := fixtures.Path(t, "e2e/sd15-pndm-s0.png")
	out := filepath.Join(t.TempDir(), "astronaut.png")
	_, stderr, err := runCLI(t, "generate", "--model", model, "--prompt", "a photograph of an astronaut riding a horse",
		"--seed", "0", "--scheduler", "pndm", "--steps", "5", "--guidance", "7.5", "--width", "32", "--height", "32", "-o", out, "--no-progress")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	texts, err := pngmeta.ReadText(bytes.NewReader(b))
	if err != nil || len(texts) != 1 || texts[0].Key != "parameters" {
		t.Fatalf("texts %q %v", texts, err)
	}
	want := "a photograph of an astronaut riding a horse\nSteps: 5, Sampler: PLMS, CFG scale: 7.5, Seed: 0, Size: 32x32, Model: tiny-sd15"
	if !strings.HasPrefix(texts[0].Value, want) {
		t.Errorf("parameters %q, want prefix %q", texts[0].Value, want)
	}
	got, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(refPNG)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ref, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0
	for y := 0; y < 32; y++ {
		for x := 0; x < 32; x++ {
			r1, g1, b1, _ := got.At(x, y).RGBA()
			r2, g2, b2, _ := ref.At(x, y).RGBA()
			for _, d := range []int{int(r1>>8) - int(r2>>8), int(g1>>8) - int(g2>>8), int(b1>>8) - int(b2>>8)} {
				if d < 0 {
					d = -d
				}
				worst = max(worst, d)
			}
		}
	}
	if worst > 1 { // a value on a .5 rounding edge may round the other way
		t.Errorf("pixels differ from the reference by up to %d levels", worst)
	}
}

// Bad input gives a clear error and writes nothing.
func TestGenerateBadInput(t *testing.T) {
	model := tinyModel(t, "tiny-sd15")
	empty := t.TempDir()
	noTok := t.TempDir()
	if err := os.CopyFS(noTok, os.DirFS(model)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(noTok, "tokenizer", "merges.txt")); err != nil {
		t.Fatal(err)
	}
	notPNG := filepath.Join(t.TempDir(), "x.png")
	os.WriteFile(notPNG, []byte("not an image"), 0o644)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"width", []string{"--width", "33"}, "multiples of 2"},
		{"scheduler", []string{"--scheduler", "nope"}, "unknown scheduler"},
		{"steps", []string{"--steps", "0"}, "steps must be at least 1"},
		{"strength", []string{"--init-image", fixtures.Path(t, "e2e/init-sd15-i2i-pndm-0.5.png"), "--strength", "1.5"}, "strength"},
		{"strength0", []string{"--init-image", fixtures.Path(t, "e2e/init-sd15-i2i-pndm-0.5.png"), "--strength", "0"}, "no denoising step"},
		{"empty model", []string{"--model", empty}, "not a diffusers model folder"},
		{"no tokenizer", []string{"--model", noTok}, "incomplete tokenizer"},
		{"bad init", []string{"--init-image", notPNG}, "init image"},
		{"seed", []string{"--seed", "abc"}, "not a 64-bit integer"},
		{"missing model", []string{"--model", filepath.Join(empty, "nothing-here")}, "no such file"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		args := []string{"generate", "--model", model, "--prompt", "x", "--steps", "2", "--output-dir", dir, "--no-progress"}
		args = append(args, c.args...)
		_, _, err := runCLI(t, args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", c.name, err, c.want)
		}
		var files []string
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if d != nil && !d.IsDir() {
				files = append(files, p)
			}
			return nil
		})
		if len(files) > 0 {
			t.Errorf("%s: wrote %v", c.name, files)
		}
	}
}

func TestOutputDirNumbering(t *testing.T) {
	model := tinyModel(t, "tiny-sd15")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "00007-1.png"), nil, 0o644)
	stdout, stderr, err := runCLI(t, "generate", "--model", model, "--prompt", "x", "--steps", "2", "--seed", "5",
		"--image-count", "2", "--output-dir", dir, "--no-progress")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	want := filepath.Join(dir, "00008-5.png") + "\n" + filepath.Join(dir, "00009-5.png") + "\n"
	if stdout != want {
		t.Fatalf("wrote %q, want %q", stdout, want)
	}
}

func TestInspectAndTokenize(t *testing.T) {
	model := tinyModel(t, "tiny-sd15")
	out, _, err := runCLI(t, "inspect", model)
	if err != nil || !strings.Contains(out, "family sd1") || !strings.Contains(out, "unet") {
		t.Fatalf("inspect: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, "tokenize", "--json", "a photograph of an astronaut riding a horse")
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		IDs []int `json:"ids"`
	}
	if err := json.Unmarshal([]byte(out), &tok); err != nil {
		t.Fatal(err)
	}
	want := []int{49406, 320, 8853, 539, 550, 18376, 6765, 320, 4558, 49407, 49407}
	for i, id := range want {
		if tok.IDs[i] != id {
			t.Fatalf("ids %v, want prefix %v", tok.IDs[:11], want)
		}
	}
	if len(tok.IDs) != 77 {
		t.Fatalf("%d ids", len(tok.IDs))
	}
}

// pull and generate by repo id against a local fake Hub.
func TestPullAndGenerateByRepoID(t *testing.T) {
	model := tinyModel(t, "tiny-sd15")
	files := map[string][]byte{}
	err := filepath.WalkDir(model, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, "refs.safetensors") {
			return err
		}
		rel, _ := filepath.Rel(model, p)
		b, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := hubtest.NewServer(t, files, hubtest.Options{RepoID: "owner/tiny"})
	cache := t.TempDir()
	t.Setenv("HF_ENDPOINT", srv.URL)
	t.Setenv("HF_HUB_CACHE", cache)
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HF_HUB_OFFLINE", "")
	out, stderr, err := runCLI(t, "pull", "owner/tiny", "--include", "*.json")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if _, err := os.Stat(filepath.Join(strings.TrimSpace(out), "unet", "config.json")); err != nil {
		t.Fatalf("pull: %v", err)
	}
	png := filepath.Join(t.TempDir(), "x.png")
	if _, stderr, err := runCLI(t, "generate", "--model", "owner/tiny", "--prompt", "x", "--steps", "2", "-o", png, "--no-progress"); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	// Only the fp16 UNet weights were fetched, not both variants.
	var got []string
	filepath.WalkDir(filepath.Join(cache, "models--owner--tiny", "snapshots"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, "unet") {
			got = append(got, filepath.Base(p))
		}
		return nil
	})
	if strings.Join(got, ",") != "config.json,diffusion_pytorch_model.fp16.safetensors" {
		t.Errorf("unet files fetched: %v", got)
	}
}

// Without --model, generate pulls the default repo, converts it once to a
// 6-bit package beside the cache, and generates from the package.
func TestDefaultModel(t *testing.T) {
	model := tinyModel(t, "tiny-sd21")
	files := map[string][]byte{}
	err := filepath.WalkDir(model, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, "refs.safetensors") {
			return err
		}
		rel, _ := filepath.Rel(model, p)
		b, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := hubtest.NewServer(t, files, hubtest.Options{RepoID: catalog.DefaultRepo})
	home := t.TempDir()
	t.Setenv("HF_ENDPOINT", srv.URL)
	t.Setenv("HF_HOME", home)
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HF_HUB_OFFLINE", "")
	for run := 0; run < 2; run++ {
		out := filepath.Join(t.TempDir(), "x.png")
		_, stderr, err := runCLI(t, "generate", "--prompt", "a fox", "--steps", "2", "--seed", "3", "-o", out, "--no-progress")
		if err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, stderr)
		}
		converted := strings.Contains(stderr, "converting "+catalog.DefaultRepo)
		if converted != (run == 0) {
			t.Errorf("run %d: converted=%v\n%s", run, converted, stderr)
		}
	}
	pkgs, _ := filepath.Glob(filepath.Join(home, "pigment", "models--stabilityai--stable-diffusion-2-1-base", "*-6bit", "pigment.json"))
	if len(pkgs) != 1 {
		t.Fatalf("packages %v", pkgs)
	}
}

func TestConvertCommand(t *testing.T) {
	model := tinyModel(t, "tiny-sd15")
	out := filepath.Join(t.TempDir(), "pkg")
	recipe := filepath.Join(t.TempDir(), "recipe.json")
	os.WriteFile(recipe, []byte(`{"unet/conv_in.weight": 0, "unet/*attn1*": 4}`), 0o644)
	_, stderr, err := runCLI(t, "convert", "--model", model, "-o", out, "--quantize-nbits", "8", "--min-size", "1",
		"--recipe", recipe, "--check-output-correctness", "--no-progress")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "unet: PSNR") {
		t.Errorf("no check results printed:\n%s", stderr)
	}
	info, _, err := runCLI(t, "inspect", "--tensors", out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kind pigment", "recipe: 8 bits, kmeans", "output check (threshold 35.0 dB)", "conv_in.weight", "4 bits kmeans, 1 table(s) of 16 (32 B)"} {
		if !strings.Contains(info, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, info)
		}
	}
	// The package runs like any model: one network on reference inputs...
	refs := filepath.Join(model, "refs.safetensors")
	runOut := filepath.Join(t.TempDir(), "unet.safetensors")
	if _, stderr, err := runCLI(t, "run", "--model", out, "--component", "unet", "--inputs", refs, "--out", runOut); err != nil {
		t.Fatalf("run on a package: %v\n%s", err, stderr)
	}
	got, err := safetensors.Open(runOut)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	ref, err := safetensors.Open(refs)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	g, _, _ := got.Float32("unet.out")
	w, _, _ := ref.Float32("unet.out")
	if psnr := palette.PSNR(w, g); psnr < 35 {
		t.Errorf("unet of the 8-bit package: PSNR %.1f dB against float32", psnr)
	}
	// ... and a whole generation.
	png := filepath.Join(t.TempDir(), "x.png")
	if _, stderr, err := runCLI(t, "generate", "--model", out, "--prompt", "x", "--steps", "2", "-o", png, "--no-progress"); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}

	bad := []struct {
		name string
		args []string
		want string
	}{
		{"bits", []string{"--quantize-nbits", "5"}, "want 1, 2, 3, 4, 6 or 8"},
		{"exists", []string{}, "exists"},
		{"mode", []string{"--mode", "lloyd"}, "want kmeans, uniform or unique"},
		{"granularity", []string{"--granularity", "per-row"}, "want per-tensor or per-grouped-channel"},
		{"unique", []string{"--mode", "unique", "--force", "--quantize-nbits", "2", "--min-size", "1"}, "unique"},
		{"check", []string{"--force", "--check-output-correctness", "--check-threshold", "200"}, "output check failed"},
	}
	for _, c := range bad {
		args := append([]string{"convert", "--model", model, "-o", out, "--no-progress"}, c.args...)
		_, _, err := runCLI(t, args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", c.name, err, c.want)
		}
	}
	recipeBad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(recipeBad, []byte(`{"unet/no_such_tensor.weight": 4}`), 0o644)
	out2 := filepath.Join(t.TempDir(), "pkg2")
	if _, _, err := runCLI(t, "convert", "--model", model, "-o", out2, "--recipe", recipeBad, "--no-progress"); err == nil || !strings.Contains(err.Error(), "no_such_tensor") {
		t.Errorf("recipe naming a missing tensor: %v", err)
	}
	if _, err := os.Stat(out2); !os.IsNotExist(err) {
		t.Errorf("failed conversion left %s", out2)
	}
}

// TestBinaryDeps checks that the pigment binary links no test code: the
// testing package and the test helpers stay out of the product.
func TestBinaryDeps(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to list the binary's packages")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "testing" || strings.HasSuffix(p, "/internal/testmodel") || strings.HasSuffix(p, "/internal/fixtures") || strings.HasSuffix(p, "/hubtest") {
			t.Errorf("the binary links %s", p)
		}
	}
}
