/// A release, trust policy or rotation that Stet refuses to act on (exit code 10). Each cause
/// has its own `code`, so scripts and tests can tell them apart; `message` says what to do.
public struct VerificationError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Why verification failed. New codes may be added; match the ones you care about.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public var description: String { rawValue }

        // Release verification, steps 1 to 6 of the release contract.
        public static let envelopeMissing = Code(rawValue: "envelope-missing")
        public static let envelopeMalformed = Code(rawValue: "envelope-malformed")
        public static let wrongPayloadType = Code(rawValue: "wrong-payload-type")
        public static let indexMalformed = Code(rawValue: "index-malformed")
        public static let belowThreshold = Code(rawValue: "below-threshold")
        public static let expired = Code(rawValue: "expired")
        /// `created` later than now, beyond the clock-skew allowance.
        public static let createdInFuture = Code(rawValue: "created-in-future")
        public static let rollback = Code(rawValue: "rollback")
        public static let equivocation = Code(rawValue: "equivocation")
        public static let fileMissing = Code(rawValue: "file-missing")
        public static let fileModified = Code(rawValue: "file-modified")
        public static let fileUnlisted = Code(rawValue: "file-unlisted")
        /// A listed file that is not a regular file or is larger than a manifest may be. (A file
        /// the host could not read is no refusal: `InputFile.Failure` with a `hostError`.)
        public static let fileUnreadable = Code(rawValue: "file-unreadable")
        public static let unsafePath = Code(rawValue: "unsafe-path")
        public static let symlinkEscape = Code(rawValue: "symlink-escape")
        /// The state directory's copy of the release in force is not the release `release.json`
        /// names (it was changed or damaged there).
        public static let storedReleaseMismatch = Code(rawValue: "stored-release-mismatch")

        // The trust policy and its rotation.
        public static let trustNotPinned = Code(rawValue: "trust-not-pinned")
        public static let trustChangedWithoutRotation = Code(rawValue: "trust-changed-without-rotation")
        public static let rotationMalformed = Code(rawValue: "rotation-malformed")
        public static let rotationDigestMismatch = Code(rawValue: "rotation-digest-mismatch")
        public static let rotationVersion = Code(rawValue: "rotation-version")
        public static let rotationOldRootThreshold = Code(rawValue: "rotation-old-root-threshold")
        public static let rotationNewRootThreshold = Code(rawValue: "rotation-new-root-threshold")
        /// A key of the new policy (or of the statement) that the other does not name.
        public static let rotationKeyMissing = Code(rawValue: "rotation-key-missing")
        /// A key file whose id differs from the one the rotation signed.
        public static let rotationKeyMismatch = Code(rawValue: "rotation-key-mismatch")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "release refused (\(code)): \(message)" }
}
