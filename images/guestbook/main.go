// Command guestbook is the two-tier demo workload kiln's cluster scenario deploys, in the
// spirit of Kubernetes' classic guestbook: a small Redis-protocol store and a web front end
// that keeps its entries in it.
//
//	guestbook store -listen :6379          RESP server: PING, SET, GET, RPUSH, LRANGE
//	guestbook web -listen :8080 -store HOST:6379
//	                                        GET /            the entries, one per line
//	                                        POST /?entry=X   adds X, then lists the entries
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: guestbook store|web [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	listen := fs.String("listen", ":8080", "address to listen on")
	store := fs.String("store", "store:6379", "address of the store (web)")
	fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "store":
		err = serveStore(*listen)
	case "web":
		err = serveWeb(*listen, *store)
	default:
		err = fmt.Errorf("unknown role %q", os.Args[1])
	}
	log.Fatal(err)
}

// store is an in-memory key space of strings and lists.
type store struct {
	mu    sync.Mutex
	str   map[string]string
	lists map[string][]string
}

func serveStore(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	log.Printf("store listening on %s", addr)
	return acceptStore(ln)
}

// acceptStore serves the store protocol on every connection ln accepts.
func acceptStore(ln net.Listener) error {
	s := &store{str: map[string]string{}, lists: map[string][]string{}}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go s.serve(c)
	}
}

func (s *store) serve(c net.Conn) {
	defer c.Close()
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		s.do(w, args)
		if w.Flush() != nil {
			return
		}
	}
}

func (s *store) do(w *bufio.Writer, a []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch cmd := strings.ToUpper(a[0]); {
	case cmd == "PING":
		w.WriteString("+PONG\r\n")
	case cmd == "SET" && len(a) == 3:
		s.str[a[1]] = a[2]
		w.WriteString("+OK\r\n")
	case cmd == "GET" && len(a) == 2:
		v, ok := s.str[a[1]]
		if !ok {
			w.WriteString("$-1\r\n")
			return
		}
		writeBulk(w, v)
	case cmd == "RPUSH" && len(a) >= 3:
		s.lists[a[1]] = append(s.lists[a[1]], a[2:]...)
		fmt.Fprintf(w, ":%d\r\n", len(s.lists[a[1]]))
	case cmd == "LRANGE" && len(a) == 4:
		l := s.lists[a[1]]
		fmt.Fprintf(w, "*%d\r\n", len(l))
		for _, v := range l {
			writeBulk(w, v)
		}
	default:
		fmt.Fprintf(w, "-ERR unknown command or arguments %q\r\n", a[0])
	}
}

func writeBulk(w io.Writer, v string) { fmt.Fprintf(w, "$%d\r\n%s\r\n", len(v), v) }

// readCommand reads one RESP array of bulk strings (what clients send).
func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := readLine(r)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(line, "*") {
		return strings.Fields(line), nil // inline command
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 1 {
		return nil, errors.New("bad array header")
	}
	args := make([]string, n)
	for i := range args {
		if args[i], err = readBulk(r); err != nil {
			return nil, err
		}
	}
	return args, nil
}

func readLine(r *bufio.Reader) (string, error) {
	l, err := r.ReadString('\n')
	return strings.TrimRight(l, "\r\n"), err
}

func readBulk(r *bufio.Reader) (string, error) {
	h, err := readLine(r)
	if err != nil || !strings.HasPrefix(h, "$") {
		return "", errors.New("bad bulk string")
	}
	n, err := strconv.Atoi(h[1:])
	if err != nil || n < 0 {
		return "", errors.New("bad bulk length")
	}
	b := make([]byte, n+2)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return string(b[:n]), nil
}

// call sends one command to the store and returns its reply's strings.
func call(addr string, args ...string) ([]string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	fmt.Fprintf(c, "*%d\r\n", len(args))
	for _, a := range args {
		writeBulk(c, a)
	}
	r := bufio.NewReader(c)
	h, err := readLine(r)
	if err != nil || h == "" {
		return nil, fmt.Errorf("reading the store's reply: %v", err)
	}
	switch h[0] {
	case '+', ':':
		return []string{h[1:]}, nil
	case '-':
		return nil, errors.New(h[1:])
	case '*':
		n, _ := strconv.Atoi(h[1:])
		out := make([]string, n)
		for i := range out {
			if out[i], err = readBulk(r); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected reply %q", h)
}

func serveWeb(addr, storeAddr string) error {
	log.Printf("web listening on %s, store at %s", addr, storeAddr)
	return http.ListenAndServe(addr, webHandler(storeAddr))
}

func webHandler(storeAddr string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			e := r.URL.Query().Get("entry")
			if e == "" {
				http.Error(w, "entry is empty", http.StatusBadRequest)
				return
			}
			if _, err := call(storeAddr, "RPUSH", "entries", e); err != nil {
				http.Error(w, "store: "+err.Error(), http.StatusBadGateway)
				return
			}
		}
		entries, err := call(storeAddr, "LRANGE", "entries", "0", "-1")
		if err != nil {
			http.Error(w, "store: "+err.Error(), http.StatusBadGateway)
			return
		}
		host, _ := os.Hostname()
		fmt.Fprintf(w, "guestbook on %s\n", host)
		for _, e := range entries {
			fmt.Fprintln(w, e)
		}
	})
}
