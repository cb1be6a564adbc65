package service

import (
	"sort"
	"strings"
)

// CreateOptions are the options of a new volume (Docker's `-o key=value`).
type CreateOptions struct {
	NoCOW           bool   // copyonwrite=false: NOCOW on the empty volume root
	From            string // a snapshot (VOL@TIME) or volume to start from
	NoFinalSnapshot bool   // finalsnapshot=false: removing takes no snapshot
}

var createOptionNames = []string{"copyonwrite", "finalsnapshot", "from"}

// ParseCreateOptions checks Docker-style options and refuses unknown keys and
// bad values, naming what is allowed.
func ParseCreateOptions(opts map[string]string) (CreateOptions, error) {
	var o CreateOptions
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := opts[k]
		switch strings.ToLower(k) {
		case "copyonwrite":
			b, err := parseBool(k, v)
			if err != nil {
				return o, err
			}
			o.NoCOW = !b
		case "finalsnapshot":
			b, err := parseBool(k, v)
			if err != nil {
				return o, err
			}
			o.NoFinalSnapshot = !b
		case "from":
			if err := validateSource(v); err != nil {
				return o, errorf(ErrInvalidArg, "option from=%q: %v", v, err)
			}
			o.From = v
		default:
			return o, errorf(ErrInvalidArg, "unknown option %q: allowed options are %s", k, strings.Join(createOptionNames, ", "))
		}
	}
	return o, nil
}

func parseBool(key, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, errorf(ErrInvalidArg, "option %s=%q: the value must be true or false", key, v)
}

// validateSource checks a name that may be a volume or a snapshot.
func validateSource(name string) error {
	if strings.Contains(name, "@") {
		return ValidateSnapshotName(name)
	}
	return ValidateName(name)
}
