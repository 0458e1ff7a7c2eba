package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dnsfront/dnsfront/ocsp"
)

// newOCSPCmd is `dnsfront ocsp`: generate, inspect and fetch OCSP responses
// by hand, and show the running server's staples.
func newOCSPCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ocsp",
		Short: "Generate, inspect and fetch OCSP responses; show the server's staples",
	}
	cmd.AddCommand(newOCSPGenerateCmd(), newOCSPInspectCmd(), newOCSPFetchCmd(), newOCSPStatusCmd())
	return cmd
}

func newOCSPGenerateCmd() *cobra.Command {
	var cert, caCert, caKey, out string
	var days, minutes int
	cmd := &cobra.Command{
		Use:   "generate --cert CERT --ca-cert CA --ca-key KEY --out FILE [--days N] [--minutes M]",
		Short: "Mint a good OCSP response for a certificate of a local CA (dnsdist's generateOCSPResponse)",
		Long: `Mint an OCSP response saying the first certificate of CERT (a chain file works) is good,
valid from now for N days and M minutes, with SHA-256 CertID hashes, signed by the CA key.
The DER response is written atomically to FILE.`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cert == "" || caCert == "" || caKey == "" || out == "" {
				return errors.New("ocsp generate: --cert, --ca-cert, --ca-key and --out are required")
			}
			if days < 0 || minutes < 0 || days == 0 && minutes == 0 {
				return fmt.Errorf("ocsp generate: validity of %d days and %d minutes: it must be positive", days, minutes)
			}
			now := time.Now()
			next := now.Add(time.Duration(days)*24*time.Hour + time.Duration(minutes)*time.Minute)
			s, err := ocsp.GenerateFiles(cert, caCert, caKey, out, now, next)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: good, serial %s, thisUpdate %s, nextUpdate %s\n",
				out, ocsp.FormatSerial(s.Serial), fmtTime(s.ThisUpdate), fmtTime(s.NextUpdate))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cert, "cert", "", "certificate (PEM; the first certificate of a chain file)")
	f.StringVar(&caCert, "ca-cert", "", "certificate of the CA that issued it (PEM)")
	f.StringVar(&caKey, "ca-key", "", "private key of that CA (PEM: PKCS#8, EC or PKCS#1)")
	f.StringVar(&out, "out", "", "where to write the DER response")
	f.IntVar(&days, "days", 7, "validity in days")
	f.IntVar(&minutes, "minutes", 0, "additional validity in minutes")
	return cmd
}

func newOCSPInspectCmd() *cobra.Command {
	var cert, issuerFile string
	cmd := &cobra.Command{
		Use:   "inspect FILE [--cert CERT [--issuer CA]]",
		Short: "Show an OCSP response and whether dnsfront would staple it",
		Long: `Print the response status, certificate status, serial, thisUpdate, nextUpdate,
producedAt and signer of a DER OCSP response, then the verdict of each check dnsfront
applies before stapling. With --cert (a chain file: its second certificate is taken as
the issuer unless --issuer is given) the certificate checks run too. With --cert alone (a
leaf without its issuer, as dnsdist configurations have it) everything but the signature is
checked, as the server does: serial, issuer name hash, issuer key hash against the
authority key identifier, status and time window.
Exits non-zero when the response is not usable.`,
		Args:         cobra.ExactArgs(1),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			der, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("ocsp inspect: %w", err)
			}
			leaf, issuer, err := readLeafIssuer(cert, issuerFile)
			if err != nil {
				return err
			}
			r := ocsp.Inspect(der, leaf, issuer, time.Now())
			printReport(cmd.OutOrStdout(), file, r)
			if r.Err != nil {
				return fmt.Errorf("ocsp: %s: not usable: %s", file, strings.TrimPrefix(r.Err.Error(), "ocsp: "))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cert, "cert", "", "certificate or chain the response is for (PEM)")
	cmd.Flags().StringVar(&issuerFile, "issuer", "", "issuer certificate (PEM); default: the second certificate of --cert")
	return cmd
}

// readLeafIssuer reads the first certificate of certFile (nil when
// certFile is "") and its issuer: issuerFile when given, else the second
// certificate of certFile, else nil.
func readLeafIssuer(certFile, issuerFile string) (leaf, issuer *x509.Certificate, err error) {
	if certFile != "" {
		chain, err := ocsp.ReadChainFile(certFile)
		if err != nil {
			return nil, nil, err
		}
		leaf = chain[0]
		if len(chain) > 1 {
			issuer = chain[1]
		}
	}
	if issuerFile != "" {
		if issuer, err = ocsp.ReadCertFile(issuerFile); err != nil {
			return nil, nil, err
		}
	}
	return leaf, issuer, nil
}

func printReport(w io.Writer, file string, r *ocsp.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "File:\t%s\n", file)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("Response status", r.ResponseStatus)
	row("Certificate status", r.CertStatus)
	if r.Serial != nil {
		row("Serial", ocsp.FormatSerial(r.Serial))
	}
	row("This update", fmtTime(r.ThisUpdate))
	row("Next update", fmtTime(r.NextUpdate))
	row("Produced at", fmtTime(r.ProducedAt))
	row("Revoked at", fmtTime(r.RevokedAt))
	row("Revocation reason", r.Reason)
	row("Signer", r.Signer)
	row("CertID hash", r.HashAlgorithm)
	fmt.Fprintln(tw, "Checks:")
	skipped := false
	for _, c := range r.Checks {
		verdict := "ok"
		switch {
		case c.Skipped:
			verdict, skipped = "skip", true
		case !c.OK:
			verdict = "FAIL"
		}
		fmt.Fprintf(tw, "  [%s]\t%s\t%s\n", verdict, c.Name, c.Detail)
	}
	switch {
	case r.Err == nil && r.Unverified:
		fmt.Fprintf(tw, "Verdict:\tusable, %s: dnsfront staples it and reports it; pass --issuer (and set issuer: in the configuration) to check the signature\n", ocsp.ErrIssuerUnknown)
	case r.Err == nil && skipped:
		fmt.Fprintln(tw, "Verdict:\tusable as far as checked (pass --cert and --issuer for the certificate checks)")
	case r.Err == nil:
		fmt.Fprintln(tw, "Verdict:\tusable")
	default:
		fmt.Fprintf(tw, "Verdict:\tNOT usable: %s\n", r.Err)
	}
	tw.Flush()
}

func newOCSPFetchCmd() *cobra.Command {
	var cert, issuerFile, responder, out string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "fetch --cert CHAIN [--issuer CA] [--url URL] --out FILE",
		Short: "Fetch an OCSP response from the CA's responder, validate it and write it",
		Long: `Ask the responder (--url, else the certificate's AIA OCSP URL) about the first
certificate of CHAIN. The issuer is --issuer, else the second certificate of CHAIN, else
the certificate's AIA caIssuers URL. The response is validated like every staple and
written atomically to FILE only when it is usable.`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cert == "" || out == "" {
				return errors.New("ocsp fetch: --cert and --out are required")
			}
			leaf, issuer, err := readLeafIssuer(cert, issuerFile)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			client := &http.Client{}
			if issuer == nil {
				if issuer, err = ocsp.FetchIssuer(ctx, client, leaf, ocsp.DefaultMaxResponseSize); err != nil {
					return err
				}
			}
			url := ocsp.ResponderURL(leaf, responder)
			if url == "" {
				return fmt.Errorf("ocsp fetch: %s has no OCSP responder URL; pass --url", cert)
			}
			der, err := ocsp.Fetch(ctx, client, url, leaf, issuer, ocsp.DefaultMaxResponseSize)
			if err != nil {
				return err
			}
			s, err := ocsp.Validate(der, leaf, issuer, time.Now())
			if err != nil {
				return fmt.Errorf("ocsp: response from %s for %s: %s", url, cert, strings.TrimPrefix(err.Error(), "ocsp: "))
			}
			if err := ocsp.WriteFileAtomic(out, der, 0o644); err != nil {
				return fmt.Errorf("ocsp fetch: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: good, serial %s, thisUpdate %s, nextUpdate %s, from %s\n",
				out, ocsp.FormatSerial(s.Serial), fmtTime(s.ThisUpdate), fmtTime(s.NextUpdate), url)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cert, "cert", "", "certificate chain (PEM, leaf first)")
	f.StringVar(&issuerFile, "issuer", "", "issuer certificate (PEM)")
	f.StringVar(&responder, "url", "", "responder URL (default: the certificate's AIA OCSP URL)")
	f.StringVar(&out, "out", "", "where to write the DER response")
	f.DurationVar(&timeout, "timeout", ocsp.DefaultRequestTimeout, "timeout of the whole exchange")
	return cmd
}

func newOCSPStatusCmd() *cobra.Command {
	var admin, apiKey string
	var asJSON bool
	cmd := &cobra.Command{
		Use:          "status [--admin URL] [--api-key KEY]",
		Short:        "Show the staples of the running server (GET /api/v1/ocsp)",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			url := strings.TrimSuffix(admin, "/") + "/api/v1/ocsp"
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return fmt.Errorf("ocsp status: %w", err)
			}
			if apiKey != "" {
				req.Header.Set("X-API-Key", apiKey)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("ocsp status: %w", err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
			if err != nil {
				return fmt.Errorf("ocsp status: %s: %w", url, err)
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("ocsp status: %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
			}
			var certs []ocsp.CertStatus
			if err := json.Unmarshal(body, &certs); err != nil {
				return fmt.Errorf("ocsp status: %s: %w", url, err)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(certs)
			}
			printStatus(cmd.OutOrStdout(), certs, time.Now())
			return nil
		},
	}
	cmd.Flags().StringVar(&admin, "admin", "http://127.0.0.1:10080", "admin API base URL")
	cmd.Flags().StringVar(&apiKey, "api-key", "", "admin API key (sent as X-API-Key)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the JSON instead of a table")
	return cmd
}

func printStatus(w io.Writer, certs []ocsp.CertStatus, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CERT\tSERIAL\tSTATUS\tSOURCE\tNEXT UPDATE\tNEXT REFRESH\tFAILURES\tLAST RESULT\tMUST-STAPLE\tLAST ERROR")
	for _, c := range certs {
		must := "no"
		if c.MustStaple {
			must = "yes"
		}
		status := c.Status
		switch c.Status {
		case ocsp.StateNotApplicable:
			status = "not applicable"
		case ocsp.StateUnverified:
			status = "good, " + ocsp.DetailUnverified
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", c.Name, c.Serial, status, dash(c.Source),
			relTime(c.NextUpdate, now), relTime(c.NextRefresh, now), c.Failures, dash(c.LastResult), must, dash(c.LastError))
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func relTime(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	d := t.Sub(now).Round(time.Second)
	if d >= 0 {
		return fmt.Sprintf("%s (in %s)", fmtTime(*t), d)
	}
	return fmt.Sprintf("%s (%s ago)", fmtTime(*t), -d)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
