// Registers through liblanscape-sip with P/Invoke, with both APIs.
//   mono Register.exe HOST PORT [--tls CA_FILE]   (liblanscape_sip.so on LD_LIBRARY_PATH)
// With --tls both APIs register over TLS, trusting the CA in CA_FILE.
// Exits 0 when every expected notification arrived.
using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;

static class Native
{
    const string Lib = "lanscape_sip";
    public const int SipSuccess = 0, SipRegisterIntervalError = 11, SipRegisterSuccess = 15, SipUnregistered = 16;
    public const int SipProfileUnregistered = 0, SipProfileRegistered = 2;
    public const uint SipTransportUdp = 0, SipTransportTls = 2;

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    public delegate void NotifyCallback(ulong engine, int ev, IntPtr name, int line, IntPtr user);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    public delegate void ProfileCallback(ulong registry, uint profile, int value, IntPtr user);

    [DllImport(Lib)] public static extern uint LanScapeSipAbiVersion();
    [DllImport(Lib)] public static extern IntPtr TelephonyReturnValueText(int code);
    [DllImport(Lib)] public static extern int StartSipTelephony(string phoneName, uint lines, uint port, string localIp, out ulong engine);
    [DllImport(Lib)] public static extern int StopSipTelephony(ulong engine);
    [DllImport(Lib)] public static extern int SetNotificationCallback(ulong engine, NotifyCallback cb, IntPtr user);
    [DllImport(Lib)] public static extern int EnableSipRegisterServer(ulong engine, string names, int perLine, int viaProxy,
        string server, uint port, uint intervalS, uint expiresS, uint timeoutMs, int natDetect);
    [DllImport(Lib)] public static extern int SipRegistryOpen(ProfileCallback onState, ProfileCallback onError, IntPtr user, out ulong registry);
    [DllImport(Lib)] public static extern int SipRegistryClose(ulong registry);
    [DllImport(Lib)] public static extern int SipProfileCreate(ulong registry, string aor, string registrar, string proxy,
        string authUser, string password, uint expires, uint transport, out uint id);
    [DllImport(Lib)] public static extern int SipProfileRetrieve(ulong registry, uint id, out ulong profile);
    [DllImport(Lib)] public static extern int SipProfileEnable(ulong profile);
    [DllImport(Lib)] public static extern int SipProfileDisable(ulong profile);
    [DllImport(Lib)] public static extern int SetSipRegisterTransport(ulong engine, uint transport, uint localPort);
    [DllImport(Lib)] public static extern int AddSipTlsTrustedCertificates(ulong engine, string pem);
    [DllImport(Lib)] public static extern int SipProfileSetTls(ulong registry, uint id, string trustedPem, int systemTrust,
        string clientCertificate, string clientKey);

    public static string Text(int code) => Marshal.PtrToStringAnsi(TelephonyReturnValueText(code));
}

static class Program
{
    static readonly List<string> seen = new List<string>();
    // Delegates handed to native code live in static fields, so the GC never collects them.
    static readonly Native.NotifyCallback onNotify = OnNotify;
    static readonly Native.ProfileCallback onState = (r, id, state, u) => Note($"profile {id} state {state}");
    static readonly Native.ProfileCallback onError = (r, id, error, u) => Note($"profile {id} error {Native.Text(error)}");

    static void OnNotify(ulong engine, int ev, IntPtr name, int line, IntPtr user) =>
        Note($"{Native.Text(ev)} {Marshal.PtrToStringAnsi(name)}");

    static void Note(string what)
    {
        Console.WriteLine(what);
        lock (seen) { seen.Add(what); Monitor.PulseAll(seen); }
    }

    static bool WaitFor(string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        lock (seen)
        {
            while (!seen.Contains(what))
            {
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero) return false;
                Monitor.Wait(seen, left);
            }
            return true;
        }
    }

    static void Check(string what, int rc, int want = Native.SipSuccess)
    {
        if (rc != want) throw new Exception($"{what}: {Native.Text(rc)}, expected {Native.Text(want)}");
    }

    static int Main(string[] args)
    {
        bool tls = args.Length == 4 && args[2] == "--tls";
        if (args.Length != 2 && !tls) { Console.Error.WriteLine("usage: Register.exe HOST PORT [--tls CA_FILE]"); return 2; }
        string host = args[0];
        uint port = uint.Parse(args[1]);
        uint transport = tls ? Native.SipTransportTls : Native.SipTransportUdp;
        try
        {
            Console.WriteLine($"ABI version {Native.LanScapeSipAbiVersion()}");
            Check("start", Native.StartSipTelephony("c# example", 1, 0, "127.0.0.1", out ulong engine));
            Check("callback", Native.SetNotificationCallback(engine, onNotify, IntPtr.Zero));
            Check("transport", Native.SetSipRegisterTransport(engine, transport, 0));
            if (tls) Check("trust", Native.AddSipTlsTrustedCertificates(engine, args[3]));
            Check("interval 0", Native.EnableSipRegisterServer(engine, "cs-alice", 0, 0, host, port, 0, 300, 4000, 0),
                Native.SipRegisterIntervalError);
            Check("enable", Native.EnableSipRegisterServer(engine, "cs-alice", 0, 0, host, port, 60, 300, 4000, 0));
            if (!WaitFor("SipRegisterSuccess cs-alice")) throw new Exception("cs-alice did not register");
            GC.Collect(); // a collected delegate would crash the next callback
            GC.WaitForPendingFinalizers();
            Check("stop", Native.StopSipTelephony(engine));
            if (!WaitFor("SipUnregistered cs-alice")) throw new Exception("cs-alice did not unregister");

            Check("open", Native.SipRegistryOpen(onState, onError, IntPtr.Zero, out ulong registry));
            Check("create", Native.SipProfileCreate(registry, $"cs-bob@{host}", $"{host}:{port}", null, null, null, 600, transport, out uint id));
            if (tls) Check("profile trust", Native.SipProfileSetTls(registry, id, args[3], 1, null, null));
            Check("retrieve", Native.SipProfileRetrieve(registry, id, out ulong profile));
            Check("enable profile", Native.SipProfileEnable(profile));
            if (!WaitFor($"profile {id} state {Native.SipProfileRegistered}")) throw new Exception("profile did not register");
            Check("disable profile", Native.SipProfileDisable(profile));
            if (!WaitFor($"profile {id} state {Native.SipProfileUnregistered}")) throw new Exception("profile did not unregister");
            Check("close", Native.SipRegistryClose(registry));
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"failed: {e.Message}");
            return 1;
        }
        Console.WriteLine("C# example OK");
        return 0;
    }
}
