package remote

// For names_test (package remote_test), which compares with service's rule.
var (
	ValidateNameForTest         = validateName
	ValidateSnapshotNameForTest = validateSnapshotName
)
