import Foundation
import StetCore
import StetProviders
import StetState
import StetTesting

/// Backups with the real restic, into a repository in the subject's folder. restic runs through
/// a script that adds `--no-cache`, so nothing is written outside the folder.
final class BackupSubject: ConformanceSubject {
    let folder = TemporaryDirectory("stet-conformance-backups")
    let name = uniqueName("files")
    var backups: BackupProvider

    init() throws {
        try folder.write("secret.pw", "conformance password 5d1e\n", mode: 0o600)
        for index in 0..<5 { try folder.write("data/file\(index).txt", String(repeating: "line \(index)\n", count: 100 + index)) }
        let restic = try which("restic")
        try folder.write("restic", "#!/bin/sh\nexec \(restic) --no-cache \"$@\"\n", mode: 0o755)
        backups = BackupProvider(store: FileStateStore(root: folder.file(".stet")), baseDirectory: folder.path)
        backups.restic = Restic(executable: folder.file("restic"))
    }

    var provider: any Provider { backups }
    /// The snapshot lists of the repositories, and the key that names them.
    var caches: [String] { [".stet/backup/cache", ".stet/backup/cache.key"] }

    func release(password: String = "secret.pw") -> DesiredState {
        var desired = DesiredState()
        desired.backupPolicies[name] = BackupPolicy(
            metadata: Metadata(name: name), paths: ["data"], resticRepository: "repo", passwordFile: password, every: .seconds(3600),
            rpo: .seconds(7200), retention: .init(last: 3), checkEvery: .seconds(86_400), restoreTestEvery: .seconds(86_400))
        return desired
    }

    var releases: [DesiredState] { [release(), DesiredState()] }

    func world() -> World { World.of(folder.path) }

    /// The password file goes away after planning.
    func failing() throws -> FailingRelease {
        FailingRelease(desired: release(), cause: "cannot read the password file") { [folder] in
            try FileManager.default.removeItem(atPath: folder.file("secret.pw"))
        }
    }

    func tearDown() {}
}
