package remote

import "strings"

// The name rule of DESIGN.md ("Names"), the same as service.ValidateName's:
// [a-zA-Z0-9][a-zA-Z0-9_.-]+, 2 to 96 characters, no "..". It is repeated
// here so that this package does not depend on service; a test checks that
// both agree.
const (
	minNameLen = 2
	maxNameLen = 96
	nameChars  = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
)

// validateName checks a peer or volume name; what names it in messages.
func validateName(what, name string) error {
	switch {
	case name == "":
		return errorf(ErrInvalidName, "%s name is empty: names are %d to %d characters of %s+", what, minNameLen, maxNameLen, nameChars)
	case len(name) > maxNameLen:
		return errorf(ErrInvalidName, "%s name %.20q... is %d characters long: at most %d are allowed", what, name, len(name), maxNameLen)
	case len(name) < minNameLen:
		return errorf(ErrInvalidName, "%s name %q is too short: names are %d to %d characters of %s+", what, name, minNameLen, maxNameLen, nameChars)
	case !alnum(name[0]):
		return errorf(ErrInvalidName, "%s name %q must start with a letter or digit", what, name)
	case strings.Contains(name, ".."):
		return errorf(ErrInvalidName, "%s name %q must not contain '..'", what, name)
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return errorf(ErrInvalidName, "%s name %q includes invalid character %q: only %s+ is allowed", what, name, rune(name[i]), nameChars)
		}
	}
	return nil
}

// validateSnapshotName checks that name is VOLUME@SUFFIX for the given
// volume, with the characters service.ValidateSnapshotName allows: never a
// path.
func validateSnapshotName(volume, name string) error {
	rest, ok := strings.CutPrefix(name, volume+"@")
	if !ok {
		return errorf(ErrInvalidName, "snapshot name %q is not of volume %q: snapshots are named %s@TIMESTAMP", name, volume, volume)
	}
	if rest == "" || len(name) > 255 {
		return errorf(ErrInvalidName, "snapshot name %q: the part after '@' must be 1 to %d characters", name, 255-len(volume)-1)
	}
	if strings.Contains(rest, "..") {
		return errorf(ErrInvalidName, "snapshot name %q must not contain '..'", name)
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; !nameByte(c) && c != ':' && c != '@' {
			return errorf(ErrInvalidName, "snapshot name %q includes invalid character %q", name, rune(c))
		}
	}
	return nil
}

// validateUUID checks a UUID as btrfs shows them (lower-case
// xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx); empty is allowed.
func validateUUID(field, u string) error {
	if u == "" {
		return nil
	}
	ok := len(u) == 36
	for i := 0; ok && i < len(u); i++ {
		switch c := u[i]; i {
		case 8, 13, 18, 23:
			ok = c == '-'
		default:
			ok = c >= '0' && c <= '9' || c >= 'a' && c <= 'f'
		}
	}
	if !ok {
		return errorf(ErrBadRequest, "%s %q is not a UUID (lower-case xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", field, u)
	}
	return nil
}

func alnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }

func nameByte(c byte) bool { return alnum(c) || c == '_' || c == '.' || c == '-' }
