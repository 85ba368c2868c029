/* Test-only stand-in for Windows' bcryptprimitives.dll, which Wine 8 lacks: every Rust >= 1.78
 * Windows executable imports ProcessPrng from it for its random numbers, and without it the
 * .exe exits (code 53) before main. It forwards to RtlGenRandom (SystemFunction036), which
 * Wine has. Built with mingw into the Wine prefix by tests/packaging/wine.sh; never shipped. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
