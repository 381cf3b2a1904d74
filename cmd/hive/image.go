package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

func newImageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "image",
		Aliases: []string{"images"},
		Short:   "Import image archives onto workers and list their images",
	}
	cmd.AddCommand(newImageImportCmd(g), newImageListCmd(g))
	return cmd
}

func newImageImportCmd(g *globals) *cobra.Command {
	var node string
	var all bool
	cmd := &cobra.Command{
		Use:   "import FILE.tar (--node ID | --all)",
		Short: "Load an OCI or Docker image archive onto one worker or every ready worker",
		Long: `Load an image archive (an OCI image layout or a "docker save" tarball) onto
a worker, for clusters without a registry. --all loads it onto every worker
whose status is ready, one after the other, and reports each; the command
fails if any of them failed. A worker keeps nothing of an archive it could
not load.`,
		Example: `  hive image import busybox.tar --node 5f0c...
  hive image import busybox.tar --all`,
		Args: exactArgs("FILE.tar"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (node == "") == !all {
				return errors.New("name the target: either --node ID or --all (every ready worker)")
			}
			path := args[0]
			st, err := os.Stat(path)
			if err != nil {
				return fmt.Errorf("image archive: %w", err)
			}
			if st.IsDir() {
				return fmt.Errorf("image archive %s is a directory; pack it with `tar -cf image.tar -C %s .`", path, path)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			targets := []string{node}
			if all {
				if targets, err = readyWorkers(c); err != nil {
					return err
				}
			}
			w := cmd.OutOrStdout()
			var failed []string
			for _, id := range targets {
				imgs, err := importFile(c, id, path)
				if err != nil {
					if !all {
						return fmt.Errorf("importing %s onto node %s: %w", path, id, err)
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "node %s: import failed: %v\n", id, err)
					failed = append(failed, id)
					continue
				}
				for _, im := range imgs {
					fmt.Fprintf(w, "node %s: imported %s %s (%s)\n", id, im.Name, im.Digest, humanBytes(im.Size))
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("importing %s failed on %d of %d workers: %s", path, len(failed), len(targets), strings.Join(failed, ", "))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "ID of the worker to load the image onto")
	cmd.Flags().BoolVar(&all, "all", false, "load the image onto every ready worker")
	return cmd
}

// readyWorkers lists the IDs of the workers whose status is ready.
func readyWorkers(c *api.Client) ([]string, error) {
	nodes, _, err := c.Nodes().List(nil)
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	var ids []string
	for _, n := range nodes {
		if n.Role == structs.RoleWorker && n.Status == structs.NodeStatusReady {
			ids = append(ids, n.ID)
		}
	}
	if len(ids) == 0 {
		return nil, errors.New("no worker is ready; see `hive node ls`")
	}
	sort.Strings(ids)
	return ids, nil
}

func importFile(c *api.Client, node, path string) ([]structs.ImageInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("image archive: %w", err)
	}
	defer f.Close()
	return c.Images().Import(node, f)
}

func newImageListCmd(g *globals) *cobra.Command {
	var node string
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the images on each worker (or one, with --node)",
		Args:    exactArgs(),
	}
	cmd.Flags().StringVar(&node, "node", "", "only this worker")
	out := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		var list []structs.NodeImages
		if node != "" {
			imgs, err := c.Images().NodeList(node)
			if err != nil {
				return fmt.Errorf("listing images on node %s: %w", node, err)
			}
			list = []structs.NodeImages{{NodeID: node, Images: imgs}}
		} else if list, err = c.Images().List(); err != nil {
			return fmt.Errorf("listing images: %w", err)
		}
		for i := range list {
			if list[i].Images == nil {
				list[i].Images = []structs.ImageInfo{}
			}
		}
		if list == nil {
			list = []structs.NodeImages{}
		}
		w := cmd.OutOrStdout()
		if *out == "json" {
			return printJSON(w, list)
		}
		return printImages(w, cmd.ErrOrStderr(), list)
	}
	return cmd
}

// printImages prints one row per image; a worker that could not be asked
// is reported on stderr and makes the command fail after the table.
func printImages(w, errw io.Writer, list []structs.NodeImages) error {
	sort.SliceStable(list, func(i, j int) bool { return list[i].NodeID < list[j].NodeID })
	t := newTable(w, "NODE", "NAME", "DIGEST", "SIZE")
	var failed []string
	for _, n := range list {
		if n.Error != "" {
			failed = append(failed, n.NodeID)
			continue
		}
		imgs := n.Images
		sort.SliceStable(imgs, func(i, j int) bool { return imgs[i].Name < imgs[j].Name })
		for _, im := range imgs {
			t.row(n.NodeID, im.Name, im.Digest, humanBytes(im.Size))
		}
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, n := range list {
		if n.Error != "" {
			fmt.Fprintf(errw, "node %s: %s\n", n.NodeID, n.Error)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("could not list the images of %d worker(s): %s", len(failed), strings.Join(failed, ", "))
	}
	return nil
}

// humanBytes prints n in binary units with one decimal.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
