// P/Invoke declarations of liblanscape_sip's C ABI (include/lanscape_sip.h), used by the
// managed API of this assembly only. Handles are 64-bit integers; strings are UTF-8.
using System;
using System.Runtime.InteropServices;
using System.Text;

namespace LanScape.Sip
{
    internal static class Native
    {
        internal const string Lib = "lanscape_sip";

        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate void NotifyCallback(ulong engine, int code, IntPtr name, int line, IntPtr user);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate void ProfileCallback(ulong registry, uint profile, int value, IntPtr user);

        [DllImport(Lib)] internal static extern uint LanScapeSipAbiVersion();
        [DllImport(Lib)] internal static extern IntPtr TelephonyReturnValueText(int code);
        [DllImport(Lib)] internal static extern IntPtr GetLastSipErrorText();

        [DllImport(Lib)] internal static extern int StartSipTelephony(byte[] phoneName, uint lines, uint port, byte[] localIp, out ulong engine);
        [DllImport(Lib)] internal static extern int StopSipTelephony(ulong engine);
        [DllImport(Lib)] internal static extern int SetNotificationCallback(ulong engine, NotifyCallback cb, IntPtr user);
        [DllImport(Lib)] internal static extern int EnableSipTrace(ulong engine, int on);
        [DllImport(Lib)] internal static extern int GetLocalSipPort(ulong engine, out uint port);
        [DllImport(Lib)] internal static extern int EnableSipDomain(ulong engine, byte[] domain);
        [DllImport(Lib)] internal static extern int DisableSipDomain(ulong engine);
        [DllImport(Lib)] internal static extern int EnableSipProxyServer(ulong engine, byte[] address, uint port);
        [DllImport(Lib)] internal static extern int DisableSipProxyServer(ulong engine);
        [DllImport(Lib)] internal static extern int AddAuthorizationCredentials(ulong engine, byte[] user, byte[] password, byte[] realm);
        [DllImport(Lib)] internal static extern int ClearAuthorizationCredentials(ulong engine);
        [DllImport(Lib)] internal static extern int SetSipRegisterTransport(ulong engine, uint transport, uint localPort);
        [DllImport(Lib)] internal static extern int SetSipDnsServers(ulong engine, byte[] servers);
        [DllImport(Lib)] internal static extern int AddSipTlsTrustedCertificates(ulong engine, byte[] pem);
        [DllImport(Lib)] internal static extern int EnableSipRegisterWaitMode(ulong engine, int on);
        [DllImport(Lib)] internal static extern int EnableSipSharedChallenges(ulong engine, int on);
        [DllImport(Lib)] internal static extern int SetSipUnregisterTimeout(ulong engine, uint timeoutMs);
        [DllImport(Lib)] internal static extern int EnableSipRegisterServer(ulong engine, byte[] names, int perLine, int viaProxy,
            byte[] server, uint port, uint intervalS, uint expiresS, uint timeoutMs, int natDetect);
        [DllImport(Lib)] internal static extern int DisableSipRegisterServer(ulong engine);
        [DllImport(Lib)] internal static extern int GetSipRegistrationState(ulong engine, byte[] name, out int state);
        [DllImport(Lib)] internal static extern int EnableKeepAliveTransmissionsEx(ulong engine, int sip, int rtp, uint seconds);
        [DllImport(Lib)] internal static extern int SendSipKeepAliveEx(ulong engine, byte[] host, uint port, int on, int seconds);

        [DllImport(Lib)] internal static extern int SipRegistryOpen(ProfileCallback onState, ProfileCallback onError, IntPtr user, out ulong registry);
        [DllImport(Lib)] internal static extern int SipRegistryClose(ulong registry);
        [DllImport(Lib)] internal static extern int SipRegistrySetCloseTimeout(ulong registry, uint timeoutMs);
        [DllImport(Lib)] internal static extern int SipRegistrySetDnsServers(ulong registry, byte[] servers);
        [DllImport(Lib)] internal static extern int SipProfileCreate(ulong registry, byte[] aor, byte[] registrar, byte[] proxy,
            byte[] authUser, byte[] password, uint expires, uint transport, out uint id);
        [DllImport(Lib)] internal static extern int SipProfileSetTls(ulong registry, uint id, byte[] trustedPem, int systemTrust,
            byte[] clientCertificate, byte[] clientKey);
        [DllImport(Lib)] internal static extern int SipProfileRetrieve(ulong registry, uint id, out ulong profile);
        [DllImport(Lib)] internal static extern int SipProfileRelease(ulong profile);
        [DllImport(Lib)] internal static extern int SipProfileEnable(ulong profile);
        [DllImport(Lib)] internal static extern int SipProfileDisable(ulong profile);
        [DllImport(Lib)] internal static extern int SipProfileGetState(ulong profile, out int state);
        [DllImport(Lib)] internal static extern int SipProfileRemove(ulong registry, uint id);

        /// <summary>A NUL-terminated UTF-8 copy of <paramref name="s"/>; null stays null.</summary>
        internal static byte[] Utf8(string s)
        {
            if (s == null) return null;
            var bytes = new byte[Encoding.UTF8.GetByteCount(s) + 1];
            Encoding.UTF8.GetBytes(s, 0, s.Length, bytes, 0);
            return bytes;
        }

        /// <summary>A UTF-8 C string from the library (valid during the call that gave it).</summary>
        internal static string FromUtf8(IntPtr p)
        {
            if (p == IntPtr.Zero) return null;
            int n = 0;
            while (Marshal.ReadByte(p, n) != 0) n++;
            var bytes = new byte[n];
            Marshal.Copy(p, bytes, 0, n);
            return Encoding.UTF8.GetString(bytes);
        }

        internal static string LastErrorText() => FromUtf8(GetLastSipErrorText()) ?? "";
        internal static string CodeName(int code) => FromUtf8(TelephonyReturnValueText(code)) ?? code.ToString();
    }

    /// <summary>
    /// Holds a 64-bit handle of the library and releases it exactly once, after any call in
    /// progress with it; then frees <see cref="Owner"/> (the managed object the native
    /// callbacks reach through their user data: no callback runs after the release).
    /// </summary>
    internal abstract class LibraryHandle : SafeHandle
    {
        internal GCHandle Owner;

        protected LibraryHandle() : base(IntPtr.Zero, true) { }

        public override bool IsInvalid => handle == IntPtr.Zero;

        internal ulong Value => (ulong)handle.ToInt64();

        internal void Set(ulong value) => SetHandle(new IntPtr((long)value));

        /// <summary>Runs <paramref name="call"/> with the handle kept from release meanwhile.</summary>
        internal int Use(Func<ulong, int> call)
        {
            bool added = false;
            try
            {
                DangerousAddRef(ref added);
                return call(Value);
            }
            catch (ObjectDisposedException)
            {
                return 3; // SipInvalidHandle: the handle was released
            }
            finally
            {
                if (added) DangerousRelease();
            }
        }

        protected abstract int CloseNative();

        protected override bool ReleaseHandle()
        {
            bool closed = CloseNative() == 0;
            if (Owner.IsAllocated) Owner.Free();
            return closed;
        }
    }

    internal sealed class EngineHandle : LibraryHandle
    {
        protected override int CloseNative() => Native.StopSipTelephony(Value);
    }

    internal sealed class RegistryHandle : LibraryHandle
    {
        protected override int CloseNative() => Native.SipRegistryClose(Value);
    }

    internal sealed class ProfileHandle : LibraryHandle
    {
        protected override int CloseNative() => Native.SipProfileRelease(Value);
    }
}
