// spanscope error types.
//
// Engine code throws typed exceptions; they are caught at the job boundary (CLI main, the GUI
// worker) and shown to the user as one clear line. Programmer errors use assert/TORCH_CHECK.
//   Error        base of everything spanscope throws on purpose
//   InputError   the user's input is wrong: a missing or malformed file, a bad document,
//                a bad pattern, a shape mismatch. The message names the file or the part at fault.
//   DeviceError  the device failed: CUDA error, out of memory. The message says what to try.
//   Cancelled    the job was superseded or cancelled; quietly dropped by the job runner.
#pragma once

#include <stdexcept>
#include <string>

namespace spanscope {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class InputError : public Error {
public:
    using Error::Error;
};

class DeviceError : public Error {
public:
    using Error::Error;
};

// A job was cancelled (a newer request superseded it); not an error to show.
class Cancelled : public Error {
public:
    Cancelled() : Error("cancelled") {}
};

}  // namespace spanscope
