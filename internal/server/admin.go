package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"time"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/engine"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// admin is the control plane: plain net/http, off the hot path, loopback by default.
// /metrics is open to the webserver ACL; /api/v1/* also needs the api_key (X-API-Key)
// when one is set.
type admin struct {
	srvs []*http.Server
}

func startAdmin(s *Server, ws config.Webserver) (*admin, error) {
	acl, err := engine.NewACL(ws.ACL)
	if err != nil {
		return nil, fmt.Errorf("webserver.acl: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	api := func(h http.HandlerFunc) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if ws.APIKey != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("X-API-Key")), []byte(ws.APIKey)) != 1 {
				http.Error(w, "missing or wrong X-API-Key", http.StatusUnauthorized)
				return
			}
			h(w, r)
		})
	}
	mux.Handle("GET /api/v1/status", api(s.handleStatus))
	// Profiles for performance work, behind the same key as the API.
	mux.Handle("GET /debug/pprof/", api(pprof.Index))
	mux.Handle("GET /debug/pprof/profile", api(pprof.Profile))
	mux.Handle("GET /debug/pprof/trace", api(pprof.Trace))
	mux.Handle("POST /api/v1/reload", api(s.handleReload))
	mux.Handle("POST /api/v1/upgrade", api(s.handleUpgrade))
	s.registerAPI(mux, api)
	s.registerBlocksAPI(mux, api)
	s.registerFleetAPI(mux, api)
	guarded := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		ip, err := netip.ParseAddr(host)
		if err != nil || !acl.Allows(ip) {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		mux.ServeHTTP(w, r)
	})
	a := &admin{}
	for _, addr := range ws.ListenAddresses {
		ln, err := s.listenAdmin(addr) // upgrade.go: or the predecessor's
		if err != nil {
			a.shutdown(context.Background())
			return nil, fmt.Errorf("webserver: %w", err)
		}
		srv := &http.Server{Handler: guarded, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 60 * time.Second}
		a.srvs = append(a.srvs, srv)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("admin server stopped", "listener", addr, "err", err)
			}
		}()
		s.log.Info("admin API listening", "listener", addr)
	}
	return a, nil
}

func (a *admin) shutdown(ctx context.Context) {
	for _, srv := range a.srvs {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		_ = srv.Shutdown(c)
		cancel()
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (s *Server) handleStatus(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	cfg := s.cfg
	s.mu.Unlock()
	st := s.eng.Stats()
	type backend struct {
		Name    string `json:"name"`
		Address string `json:"address"`
		Up      bool   `json:"up"`
	}
	var bs []backend
	for _, b := range s.eng.CurrentState().Backends {
		bs = append(bs, backend{b.Name, b.Addr.String(), b.Up()})
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"server_id": cfg.General.ServerID,
		"version":   Version,
		"config":    cfg.Path,
		"uptime_s":  int(time.Since(s.started).Seconds()),
		"backends":  bs,
		"stats":     st,
	})
}

func (s *Server) handleReload(w http.ResponseWriter, _ *http.Request) {
	if err := s.Reload(); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"result": "rejected", "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"result": "ok"})
}

// registerAPI adds the TLS and OCSP endpoints.
func (s *Server) registerAPI(mux *http.ServeMux, api func(http.HandlerFunc) http.Handler) {
	mux.Handle("GET /api/v1/ocsp", api(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.st.mgr.Status())
	}))
	mux.Handle("POST /api/v1/ocsp/refresh", api(func(w http.ResponseWriter, _ *http.Request) {
		s.st.mgr.Refresh()
		writeJSON(w, http.StatusAccepted, map[string]string{"result": "refresh scheduled"})
	}))
	mux.Handle("GET /api/v1/certificates", api(func(w http.ResponseWriter, _ *http.Request) {
		type cert struct {
			Listener  string    `json:"listener"`
			ID        string    `json:"id"`
			File      string    `json:"file"`
			Subject   string    `json:"subject"`
			Serial    string    `json:"serial"`
			NotAfter  time.Time `json:"not_after"`
			Stapled   bool      `json:"stapled"`
			StapleLen int       `json:"staple_bytes"`
		}
		var out []cert
		for addr, tb := range s.tlsBinds() {
			snap := tb.store.Current()
			if snap == nil {
				continue
			}
			for _, ci := range snap.Certificates() {
				leaf := ci.Chain[0]
				out = append(out, cert{addr, ci.ID, ci.ChainFile, leaf.Subject.String(), fmt.Sprintf("%#x", leaf.SerialNumber),
					leaf.NotAfter, ci.OCSPStaple != nil, len(ci.OCSPStaple)})
			}
		}
		writeJSON(w, http.StatusOK, out)
	}))
}
