fn main() {
    std::process::exit(fazt::cli::main());
}
