import Foundation
import StetCrypto

/// Reads a file a user named on the command line (a saved plan, a checkpoint, a proof, a key):
/// a regular file of at most `limit` bytes, or exit 1 saying what is wrong with it.
func readInput(_ file: String, limit: Int, what: String) throws -> Data {
    do {
        guard let data = try InputFile.read(file, limit: limit) else {
            throw CommandFailure(status: ExitStatus.error, message: "cannot read \(what) \(file): no such file")
        }
        return data
    } catch let failure as InputFile.Failure {
        throw CommandFailure(status: ExitStatus.error, message: "cannot read \(what) \(failure)")
    }
}
