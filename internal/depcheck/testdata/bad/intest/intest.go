// Package intest keeps its rule in its code and breaks it in its test only.
package intest
