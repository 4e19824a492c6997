import CStetBuild
import Foundation
import StetCrypto
import StetState

/// What this `stet` is: its version, the commit and date it was built from (`scripts/package`
/// passes them; "unknown" for a plain `swift build`), the libcrypto it runs with, the Swift it was
/// compiled with, and the state directory its commands use when not told (`--state-dir`).
struct BuildInfo: Encodable, Equatable {
    let version: String
    let commit: String
    let buildDate: String
    let openssl: String
    let swift: String
    let stateDirectory: String

    static func current(environment: [String: String] = ProcessInfo.processInfo.environment) -> BuildInfo {
        BuildInfo(
            version: Stet.version, commit: String(cString: stet_build_commit()), buildDate: String(cString: stet_build_date()),
            openssl: CryptoLibrary.version, swift: compiler, stateDirectory: FileStateStore.resolve(option: nil, environment: environment).root)
    }

    /// The compiler's language version, to the minor release.
    static var compiler: String {
        #if compiler(>=7.0)
            return "7.0 or later"
        #elseif compiler(>=6.4)
            return "6.4"
        #elseif compiler(>=6.3)
            return "6.3"
        #elseif compiler(>=6.2)
            return "6.2"
        #elseif compiler(>=6.1)
            return "6.1"
        #else
            return "6.0"
        #endif
    }
}
