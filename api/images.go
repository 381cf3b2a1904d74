package api

import (
	"io"
	"net/http"

	"github.com/hivesec/hive/structs"
)

// Images lists images on workers and loads image archives onto them, for
// clusters without a registry.
type Images struct{ c *Client }

// Images returns the image endpoints.
func (c *Client) Images() *Images { return &Images{c} }

// List returns the images of every worker that is not down. A worker that
// could not be asked has Error set instead of Images.
func (i *Images) List() ([]structs.NodeImages, error) {
	var out []structs.NodeImages
	if _, err := i.c.query("/v1/images", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// NodeList returns the images on one worker.
func (i *Images) NodeList(nodeID string) ([]structs.ImageInfo, error) {
	if err := checkID("node ID", nodeID); err != nil {
		return nil, err
	}
	var out []structs.ImageInfo
	if _, err := i.c.query("/v1/node/"+esc(nodeID)+"/images", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Import streams an OCI or Docker image archive (a tar file) to one worker,
// which loads and unpacks it, and returns the images it now holds from the
// archive. The upload has no timeout, as archives can be large; on any
// error the worker keeps nothing from the archive.
func (i *Images) Import(nodeID string, archive io.Reader) ([]structs.ImageInfo, error) {
	if err := checkID("node ID", nodeID); err != nil {
		return nil, err
	}
	resp, err := i.c.send(request{
		method: http.MethodPost, path: "/v1/node/" + esc(nodeID) + "/images",
		body: archive, ctype: "application/x-tar", stream: true,
	})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []structs.ImageInfo
	if err := decodeBody(resp.Body, &out); err != nil {
		return nil, err
	}
	return out, nil
}
