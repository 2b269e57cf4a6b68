package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestStoreAndWeb runs the store on loopback and the front end against it.
func TestStoreAndWeb(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go acceptStore(ln)
	addr := ln.Addr().String()
	if out, err := call(addr, "PING"); err != nil || out[0] != "PONG" {
		t.Fatalf("PING = %v, %v", out, err)
	}
	if _, err := call(addr, "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(webHandler(addr))
	defer srv.Close()
	for _, e := range []string{"first", "second"} {
		resp, err := http.Post(srv.URL+"/?entry="+e, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.HasSuffix(string(body), "first\nsecond\n") {
		t.Errorf("GET / = %q, want the two entries", body)
	}
	if out, err := call(addr, "BOGUS"); err == nil {
		t.Errorf("unknown command answered %v", out)
	}
}
