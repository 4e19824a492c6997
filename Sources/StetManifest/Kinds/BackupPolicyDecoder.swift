import StetCore

/// `kind: BackupPolicy`: what to back up with restic, how often, how long to keep it, how to
/// prove it restores.
enum BackupPolicyDecoder {
    static func decode(_ cursor: Cursor, metadata: Metadata?, references: inout [(ResourceID, Cursor)]) -> BackupPolicy? {
        guard let spec = cursor.mapping() else { return nil }
        defer { spec.finish() }
        let paths = spec.required("paths", "a list of files or directories")?.stringList(nonEmpty: true)
        let exclude = spec.field("exclude", default: [], decodeExclude)
        let repository = spec.required("repository", "restic: {repo, passwordFile}").flatMap(decodeRepository)
        let every = spec.required("every", "how often to back up, e.g. 1h")?.duration()
        let rpo = spec.required("rpo", "the oldest the newest backup may be, e.g. 2h")?.duration()
        let retention = spec.field("retention", default: BackupPolicy.Retention(), decodeRetention)
        let verify = spec.field("verify", default: (check: nil, restoreTest: nil), decodeVerify)
        let drift = spec.field("drift", default: .correct) { $0.oneOf(DriftMode.self) }
        let protect = spec.field("protect", default: false) { $0.bool() }
        let runOn = spec.field("runOn", default: String?.none) { cursor -> String?? in
            guard let name = cursor.string() else { return nil }
            guard ResourceID.isValidName(name) else {
                cursor.error("expected the name of a Service (a DNS label)")
                return nil
            }
            references.append((ResourceID(.service, name), cursor))
            return .some(name)
        }
        guard let runOn else { return nil }
        guard let metadata, let paths, let exclude, let repository, let every, let rpo, let retention, let verify,
            let drift, let protect
        else { return nil }
        if rpo < every {
            spec.optional("rpo")?.error("expected an rpo at least as long as every (\(every)): it could never be met")
            return nil
        }
        var policy = BackupPolicy(
            metadata: metadata, paths: paths, exclude: exclude, resticRepository: repository.repo,
            passwordFile: repository.passwordFile, every: every, rpo: rpo, retention: retention,
            checkEvery: verify.check, restoreTestEvery: verify.restoreTest, drift: drift, protect: protect)
        policy.runOn = runOn
        return policy
    }

    /// restic's exclude patterns (`ResticExclude`): one that restic would refuse is an error here.
    static func decodeExclude(_ cursor: Cursor) -> [String]? {
        guard let items = cursor.list() else { return nil }
        var patterns: [String] = []
        for item in items {
            guard let pattern = item.string() else { continue }
            if let problem = ResticExclude.problem(in: pattern) {
                item.error("expected a restic exclude pattern: \(problem)")
                continue
            }
            patterns.append(pattern)
        }
        return patterns.count == items.count ? patterns : nil
    }

    static func decodeRepository(_ cursor: Cursor) -> (repo: String, passwordFile: String)? {
        guard let repository = cursor.mapping() else { return nil }
        defer { repository.finish() }
        guard let restic = repository.required("restic", "repo and passwordFile")?.mapping() else { return nil }
        defer { restic.finish() }
        let repo = restic.required("repo", "a restic repository, e.g. /srv/backup/web")?.string()
        let passwordFile = restic.required("passwordFile", "a file holding the repository password")?.string()
        guard let repo, let passwordFile else { return nil }
        return (repo, passwordFile)
    }

    static func decodeRetention(_ cursor: Cursor) -> BackupPolicy.Retention? {
        guard let retention = cursor.mapping() else { return nil }
        defer { retention.finish() }
        let count = { (name: String) in retention.field(name) { $0.int(in: 0...100_000) } }
        let last = count("last"), hourly = count("hourly"), daily = count("daily")
        let weekly = count("weekly"), monthly = count("monthly")
        guard let last, let hourly, let daily, let weekly, let monthly else { return nil }
        guard [last, hourly, daily, weekly, monthly].contains(where: { ($0 ?? 0) > 0 }) else {
            retention.cursor.error("expected at least one of last, hourly, daily, weekly, monthly above 0: "
                + "a retention that keeps nothing would delete every snapshot")
            return nil
        }
        return BackupPolicy.Retention(last: last, hourly: hourly, daily: daily, weekly: weekly, monthly: monthly)
    }

    static func decodeVerify(_ cursor: Cursor) -> (check: StetDuration?, restoreTest: StetDuration?)? {
        guard let verify = cursor.mapping() else { return nil }
        defer { verify.finish() }
        let check = verify.field("check") { $0.duration() }
        let restoreTest = verify.field("restoreTest") { $0.duration() }
        guard let check, let restoreTest else { return nil }
        return (check, restoreTest)
    }
}
