package main

import (
	"fmt"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/pigment-sd/pigment/hub"
)

func newPullCmd() *cobra.Command {
	var rev, localDir string
	var include, exclude []string
	cmd := &cobra.Command{
		Use:   "pull REPO_ID",
		Short: "Download a model from the Hugging Face Hub into the shared cache (or a folder)",
		Long: `Download the files of a Hub repository, as huggingface_hub's snapshot_download
does, into the cache Python tools share (HF_HUB_CACHE, else HF_HOME/hub, else
~/.cache/huggingface/hub), or as plain files into --local-dir. Files already
there are not downloaded again; interrupted downloads resume. HF_ENDPOINT,
HF_TOKEN (or the token file under HF_HOME) and HF_HUB_OFFLINE are honoured.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			repoID, r, ok := hub.ParseRepoRef(args[0])
			if !ok {
				return fmt.Errorf("%q is not a Hub repo id (owner/name[@revision])", args[0])
			}
			if r != "" && rev != "" && r != rev {
				return fmt.Errorf("revision given twice: %s and --revision %s", r, rev)
			}
			if r == "" {
				r = rev
			}
			c := hub.NewClient(hub.OptionsFromEnv(os.Getenv))
			dir, err := pull(cmd, c, repoID, r, include, exclude, localDir)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&rev, "revision", "", "branch, tag or commit (default main)")
	cmd.Flags().StringArrayVar(&include, "include", nil, "only files matching this glob (repeatable)")
	cmd.Flags().StringArrayVar(&exclude, "exclude", nil, "skip files matching this glob (repeatable)")
	cmd.Flags().StringVar(&localDir, "local-dir", "", "write plain files into this folder instead of the cache")
	return cmd
}

// pull downloads a snapshot with a total progress bar on stderr and a line
// per finished file.
func pull(cmd *cobra.Command, c *hub.Client, repoID, rev string, include, exclude []string, localDir string) (string, error) {
	stderr := cmd.ErrOrStderr()
	var total int64
	if !c.Offline() {
		if files, _, err := c.ListFiles(cmd.Context(), repoID, rev); err == nil {
			var paths []string
			size := map[string]int64{}
			for _, f := range files {
				paths = append(paths, f.Path)
				size[f.Path] = f.Size
			}
			for _, p := range hub.FilterPaths(paths, include, exclude) {
				total += size[p]
			}
		}
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription(repoID),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionClearOnFinish(),
	)
	done := map[string]int64{}
	var sum int64
	progress := func(ev hub.ProgressEvent) {
		sum += ev.Done - done[ev.File]
		done[ev.File] = ev.Done
		_ = bar.Set64(sum)
		if ev.Finished {
			how := "downloaded"
			if ev.Cached {
				how = "cached"
			}
			_ = bar.Clear()
			fmt.Fprintf(stderr, "  %s %s (%s)\n", how, ev.File, byteSize(ev.Total))
		}
	}
	dir, err := c.Snapshot(cmd.Context(), repoID, rev, hub.SnapshotOptions{Include: include, Exclude: exclude, LocalDir: localDir, Progress: progress})
	_ = bar.Finish()
	if err != nil {
		return "", err
	}
	return dir, nil
}
