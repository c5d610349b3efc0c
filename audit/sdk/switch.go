package sdk

import "github.com/imdsv2/imdsv2/internal/imdsfacts"

// facts returns the imdsfacts entry of a product, the zero SDK when there is none.
func facts(product string) imdsfacts.SDK {
	for _, s := range imdsfacts.SDKs {
		if s.ID == product {
			return s
		}
	}
	return imdsfacts.SDK{}
}

// v1Switch is how to turn the IMDSv1 fallback of product at version off: the
// variable and setting, and, for a release known to predate them, that it
// ignores them and which release to upgrade to first.
func v1Switch(product, version string) string {
	if product == imdsfacts.GoV2.ID {
		return DisableV1Fallback + "; " + imdsfacts.GoV2Switch
	}
	f := facts(product)
	if older, known := imdsfacts.OlderThan(version, f.MinV1Switch); f.MinV1Switch != "" && known && older {
		return DisableV1Fallback + " after upgrading " + f.Name + " to " + f.MinV1Switch + " or later (" + version +
			" ignores it)"
	}
	return DisableV1Fallback
}

// upgradeTarget is the release to advise a caller below its IMDSv2 minimum to
// upgrade to: the first that also honours the IMDSv1 switch, where known.
func upgradeTarget(product, min string) (target, why string) {
	f := facts(product)
	if older, known := imdsfacts.OlderThan(min, f.MinV1Switch); f.MinV1Switch != "" && known && older {
		return f.MinV1Switch, "it uses IMDSv2 from " + min + " on, and honours AWS_EC2_METADATA_V1_DISABLED from " +
			f.MinV1Switch + " on"
	}
	return min, "older versions cannot use IMDSv2"
}
