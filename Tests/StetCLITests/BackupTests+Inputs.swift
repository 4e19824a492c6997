import Foundation
import StetTesting
import Testing

/// What a backup policy names: a password file must be a private regular file.
extension BackupTests {
    /// A FIFO as password file made `status` and `plan` wait for a writer for ever; a password
    /// file anyone can read was used silently. Both are refused, as loose key files are, and
    /// restic never runs with them.
    @Test func aPasswordFileThatIsAFIFOOrOpenToOthersIsRefused() throws {
        try policy()
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        #expect(mkfifo(repo.root.file("secrets/fifo.pw"), 0o600) == 0)
        try policy(password: "secrets/fifo.pw")
        for command in ["status", "plan"] {
            let output = try StetTesting.run(Binary.stet, [command], in: repo.root.path, timeout: 60)
            #expect(output.stdout.contains("secrets/fifo.pw is not a regular file"), "\(command): \(output.combined)")
        }
        let restore = try StetTesting.run(Binary.stet, ["restore", "files", "--target", "out"], in: repo.root.path, environment: ci, timeout: 60)
        #expect(restore.status == 1)
        #expect(restore.stderr.contains("is not a regular file"), "\(restore.combined)")

        try repo.root.write("secrets/open.pw", Self.password + "\n", mode: 0o666)
        try policy(password: "secrets/open.pw")
        let status = try stet("status")
        #expect(status.status == 3)
        #expect(status.stdout.contains("is open to group or others (mode 666)"), "\(status.combined)")
        #expect(status.stdout.contains("chmod 600"), "\(status.combined)")
        let plan = try stet("plan")
        #expect(plan.stdout.contains("is open to group or others"), "\(plan.combined)")
        // Nothing is planned for the policy, so restic never runs with that file.
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        #expect(try snapshotIDs().count == 1)
        // Made private, it is taken.
        chmod(repo.root.file("secrets/open.pw"), 0o600)
        #expect(try stet("status").status == 0)
    }
}
