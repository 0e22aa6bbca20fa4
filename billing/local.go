package billing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
)

// StatusLocal: the Service runs in local mode (Config.Local): the charge,
// refund or usage record is in the ledger, exactly once per key, and
// nothing was sent to Stripe. A retry returns the entry as it is.
const StatusLocal Status = "local"

// settleLocal records an entry as local, with a stand-in object ID derived
// from its key, instead of calling Stripe.
func (s *Service) settleLocal(ctx context.Context, e *Entry) (*Entry, error) {
	sum := sha256.Sum256([]byte(e.Key))
	return s.finish(ctx, e, outcome{status: StatusLocal, stripeID: "local_" + hex.EncodeToString(sum[:8])})
}

// Local reports whether the Service runs in local mode: no Stripe key, and
// Config.Local set.
func (s *Service) Local() bool { return s.cfg.SecretKey == "" && s.cfg.Local }
