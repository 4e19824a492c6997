import Foundation
import StetFuzzing

// The libFuzzer executable: `STET_FUZZ_TARGET` names the target (`scripts/fuzz` sets it), the
// arguments are libFuzzer's. Built only with `STET_FUZZ=1` and `-sanitize=fuzzer,address`.
// SwiftPM makes the executable's `main` its own, so this one hands over to libFuzzer's driver;
// libFuzzer's `main`, linked too, needs `LLVMFuzzerTestOneInput`.

@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(
    _ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

nonisolated(unsafe) private var target: FuzzTargets.Target?

@main
enum Driver {
    static func main() {
        if CommandLine.arguments.dropFirst().first == "--list" {
            for target in FuzzTargets.all { print("\(target.name)\t\(target.seeds.joined(separator: " "))\t\(target.reads)") }
            return
        }
        let name = ProcessInfo.processInfo.environment["STET_FUZZ_TARGET"] ?? ""
        guard let found = FuzzTargets.named(name) else {
            let names = FuzzTargets.all.map(\.name).joined(separator: ", ")
            FileHandle.standardError.write(Data("stet-fuzz: STET_FUZZ_TARGET=\(name): expected one of \(names)\n".utf8))
            exit(2)
        }
        target = found
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(runDriver(&argc, &argv) { bytes, size in testOneInput(bytes, size) })
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let data = bytes.map { Data(bytes: $0, count: size) } ?? Data()
    target?.run(data)
    return 0
}
