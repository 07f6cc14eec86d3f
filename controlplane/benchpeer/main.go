// benchpeer: the compiled peer of kstream's benchmarks (docs/benchmarks.md). It reads
// resources through watch-list streams with client-go, the same minor version as the
// server, and writes NDJSON, in one of two modes:
//
//	raw      the REST client's watch-list stream; each ADDED event's object is written as
//	         the bytes the server sent (json.RawMessage), as kstream does
//	dynamic  the dynamic client's watch-list (Watch with sendInitialEvents): each
//	         event decoded into an Unstructured object, written with json.Marshal
//	         (what a user of the dynamic client or of an informer gets)
//
//	benchpeer -kubeconfig FILE -mode raw|dynamic -o FILE [-n NAMESPACE] RESOURCE...
//
// RESOURCE is a core/v1 plural (configmaps, secrets) or plural.version.group. The
// resources are read one after another; the output is one NDJSON file.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

const endAnnotation = "k8s.io/initial-events-end"

type event struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

type marker struct {
	Metadata struct {
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
}

func gvr(name string) schema.GroupVersionResource {
	parts := strings.SplitN(name, ".", 3)
	if len(parts) == 3 {
		return schema.GroupVersionResource{Group: parts[2], Version: parts[1], Resource: parts[0]}
	}
	return schema.GroupVersionResource{Version: "v1", Resource: name}
}

func path(r schema.GroupVersionResource, ns string) string {
	base := "/api/v1"
	if r.Group != "" {
		base = "/apis/" + r.Group + "/" + r.Version
	}
	if ns != "" {
		base += "/namespaces/" + ns
	}
	return base + "/" + r.Resource
}

// raw: one watch-list request per resource; objects written as sent.
func raw(ctx context.Context, cs *kubernetes.Clientset, r schema.GroupVersionResource, ns string, w *bufio.Writer) (int, error) {
	body, err := cs.CoreV1().RESTClient().Get().AbsPath(path(r, ns)).
		Param("watch", "1").Param("sendInitialEvents", "true").
		Param("allowWatchBookmarks", "true").Param("resourceVersionMatch", "NotOlderThan").
		Param("timeoutSeconds", "600").Stream(ctx)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	dec := json.NewDecoder(body)
	n := 0
	for {
		var ev event
		if err := dec.Decode(&ev); err != nil {
			if err == io.EOF {
				return n, fmt.Errorf("%s: stream ended before the end marker", r.Resource)
			}
			return n, err
		}
		switch ev.Type {
		case "ADDED":
			w.Write(ev.Object)
			w.WriteByte('\n')
			n++
		case "BOOKMARK":
			var m marker
			if err := json.Unmarshal(ev.Object, &m); err != nil {
				return n, err
			}
			if m.Metadata.Annotations[endAnnotation] == "true" {
				return n, nil
			}
		case "ERROR":
			return n, fmt.Errorf("%s: ERROR event: %s", r.Resource, ev.Object)
		}
	}
}

// dynamic: the dynamic client's watch-list (Watch with sendInitialEvents), each
// event decoded by client-go into an Unstructured object and written with
// json.Marshal, up to the end-of-initial-events bookmark.
func dyn(ctx context.Context, dc dynamic.Interface, r schema.GroupVersionResource, ns string, w *bufio.Writer) (int, error) {
	yes := true
	timeout := int64(600)
	wi, err := dc.Resource(r).Namespace(ns).Watch(ctx, metav1.ListOptions{
		SendInitialEvents:    &yes,
		AllowWatchBookmarks:  true,
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan,
		TimeoutSeconds:       &timeout,
	})
	if err != nil {
		return 0, err
	}
	defer wi.Stop()
	n := 0
	for ev := range wi.ResultChan() {
		switch ev.Type {
		case watch.Added:
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				return n, fmt.Errorf("%s: unexpected object %T", r.Resource, ev.Object)
			}
			b, err := json.Marshal(u.Object)
			if err != nil {
				return n, err
			}
			w.Write(b)
			w.WriteByte('\n')
			n++
		case watch.Bookmark:
			u, ok := ev.Object.(*unstructured.Unstructured)
			if ok && u.GetAnnotations()[endAnnotation] == "true" {
				return n, nil
			}
		case watch.Error:
			return n, fmt.Errorf("%s: ERROR event: %v", r.Resource, ev.Object)
		}
	}
	return n, fmt.Errorf("%s: stream ended before the end marker", r.Resource)
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file")
	mode := flag.String("mode", "raw", "raw or dynamic")
	out := flag.String("o", "-", "output file (- for stdout)")
	ns := flag.String("n", "", "namespace (all when empty)")
	flag.Parse()
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	cfg.QPS, cfg.Burst = 1000, 1000
	f := os.Stdout
	if *out != "-" {
		if f, err = os.Create(*out); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	// one goroutine per resource, as kstream streams them at once: each into a
	// file of its own (the first into the output), appended in order at the end
	ctx := context.Background()
	names := flag.Args()
	files := make([]*os.File, len(names))
	counts := make([]int, len(names))
	errs := make([]error, len(names))
	done := make(chan int)
	for i, name := range names {
		files[i] = f
		if i > 0 {
			if files[i], err = os.CreateTemp("", "benchpeer-"); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			defer os.Remove(files[i].Name())
		}
		go func(i int, r schema.GroupVersionResource) {
			defer func() { done <- i }()
			w := bufio.NewWriterSize(files[i], 256*1024)
			switch *mode {
			case "raw":
				cs, e := kubernetes.NewForConfig(cfg)
				if e != nil {
					errs[i] = e
					return
				}
				counts[i], errs[i] = raw(ctx, cs, r, *ns, w)
			case "dynamic":
				dc, e := dynamic.NewForConfig(cfg)
				if e != nil {
					errs[i] = e
					return
				}
				counts[i], errs[i] = dyn(ctx, dc, r, *ns, w)
			default:
				errs[i] = fmt.Errorf("unknown mode %q", *mode)
			}
			if errs[i] == nil {
				errs[i] = w.Flush()
			}
		}(i, gvr(name))
	}
	for range names {
		<-done
	}
	total := 0
	for i := range names {
		if errs[i] != nil {
			fmt.Fprintln(os.Stderr, errs[i])
			os.Exit(1)
		}
		total += counts[i]
		if i > 0 {
			if _, err := files[i].Seek(0, io.SeekStart); err == nil {
				_, err = io.Copy(f, files[i])
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			files[i].Close()
		}
	}
	if *out != "-" {
		if err := f.Sync(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		f.Close()
	}
	fmt.Fprintln(os.Stderr, total)
}
