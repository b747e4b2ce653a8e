// The profile registry API (in the style of the Symbian SIP Profile API) as .NET objects:
// a registry (IDisposable) with events, profiles created from settings, and profile
// handles that register while enabled. Failures throw SipException with the code.
using System;
using System.Runtime.InteropServices;
using Code = LanScape.VoipMediaEngine.TELEPHONY_RETURN_VALUE;

namespace LanScape.Sip
{
    /// <summary>A call of the library failed; <see cref="Code"/> says how.</summary>
    public sealed class SipException : Exception
    {
        public SipException(Code code, string detail)
            : base(VoipMediaEngine.ReturnValueText(code) + (string.IsNullOrEmpty(detail) ? "" : ": " + detail))
        {
            Code = code;
        }

        public Code Code { get; private set; }

        internal static void Check(int rc)
        {
            if (rc != 0) throw new SipException((Code)rc, Native.LastErrorText());
        }
    }

    /// <summary>The registration state of a profile.</summary>
    public enum ProfileState
    {
        Unregistered = 0,
        Registering = 1,
        Registered = 2,
        Unregistering = 3,
    }

    /// <summary>What a profile registers.</summary>
    public sealed class ProfileSettings
    {
        /// <summary>The address of record, user@domain.</summary>
        public string Aor;
        /// <summary>The registrar, host[:port].</summary>
        public string Registrar;
        /// <summary>An outbound proxy, host[:port] (null: none).</summary>
        public string OutboundProxy;
        /// <summary>Digest user and password (null: the registrar asks none).</summary>
        public string AuthUser;
        public string Password;
        /// <summary>The expiry asked for, seconds.</summary>
        public uint ExpiresSeconds = 3600;
        public VoipMediaEngine.SIP_TRANSPORT Transport = VoipMediaEngine.SIP_TRANSPORT.SipTransportUdp;
        /// <summary>With TLS: trusted CA certificates (PEM text or file path) and whether the system's are trusted too.</summary>
        public string TrustedCertificates;
        public bool UseSystemTrust = true;
    }

    /// <summary>A profile's state changed (<see cref="ProfileRegistry.StateChanged"/>).</summary>
    public sealed class ProfileStateEventArgs : EventArgs
    {
        internal ProfileStateEventArgs(uint id, ProfileState state) { ProfileId = id; State = state; }
        public uint ProfileId { get; private set; }
        public ProfileState State { get; private set; }
    }

    /// <summary>An asynchronous error of a profile (<see cref="ProfileRegistry.ErrorOccurred"/>).</summary>
    public sealed class ProfileErrorEventArgs : EventArgs
    {
        internal ProfileErrorEventArgs(uint id, Code error) { ProfileId = id; Error = error; }
        public uint ProfileId { get; private set; }
        public Code Error { get; private set; }
    }

    /// <summary>
    /// A registry connected to the process's one registration service. Events run on the
    /// service's event thread, in the order things happened; a state read after an event
    /// reflects it. Dispose closes it (profiles no other handle keeps enabled unregister).
    /// </summary>
    public sealed class ProfileRegistry : IDisposable
    {
        private static readonly Native.ProfileCallback OnState = StateTrampoline;
        private static readonly Native.ProfileCallback OnError = ErrorTrampoline;

        private readonly RegistryHandle registry = new RegistryHandle();

        public event EventHandler<ProfileStateEventArgs> StateChanged;
        public event EventHandler<ProfileErrorEventArgs> ErrorOccurred;

        public ProfileRegistry()
        {
            var self = GCHandle.Alloc(this);
            ulong handle;
            int rc = Native.SipRegistryOpen(OnState, OnError, GCHandle.ToIntPtr(self), out handle);
            if (rc != 0)
            {
                self.Free();
                SipException.Check(rc);
            }
            registry.Owner = self;
            registry.Set(handle);
        }

        /// <summary>Creates a profile; its id.</summary>
        public uint Create(ProfileSettings settings)
        {
            if (settings == null) throw new ArgumentNullException("settings");
            uint id = 0;
            SipException.Check(registry.Use(h => Native.SipProfileCreate(h, Native.Utf8(settings.Aor),
                Native.Utf8(settings.Registrar), Native.Utf8(settings.OutboundProxy), Native.Utf8(settings.AuthUser),
                Native.Utf8(settings.Password), settings.ExpiresSeconds, (uint)settings.Transport, out id)));
            if (settings.TrustedCertificates != null || !settings.UseSystemTrust)
            {
                SipException.Check(registry.Use(h => Native.SipProfileSetTls(h, id, Native.Utf8(settings.TrustedCertificates),
                    settings.UseSystemTrust ? 1 : 0, null, null)));
            }
            return id;
        }

        /// <summary>A handle of a profile: enable it to register.</summary>
        public Profile Retrieve(uint id)
        {
            ulong handle = 0;
            SipException.Check(registry.Use(h => Native.SipProfileRetrieve(h, id, out handle)));
            return new Profile(id, handle);
        }

        /// <summary>Deletes a profile (SipProfileInUse while a live handle keeps it enabled).</summary>
        public void Remove(uint id) => SipException.Check(registry.Use(h => Native.SipProfileRemove(h, id)));

        /// <summary>DNS servers ("ip[:port], ..."; null or "": the system's).</summary>
        public void SetDnsServers(string servers) =>
            SipException.Check(registry.Use(h => Native.SipRegistrySetDnsServers(h, Native.Utf8(servers))));

        /// <summary>How long closing the last registry waits at most for unregistrations (100 to
        /// 600000 ms; for the whole process).</summary>
        public void SetCloseTimeout(uint timeoutMs) =>
            SipException.Check(registry.Use(h => Native.SipRegistrySetCloseTimeout(h, timeoutMs)));

        public void Dispose()
        {
            registry.Dispose(); // SipRegistryClose: no event after it (outside an event)
        }

        private static ProfileRegistry From(IntPtr user) => GCHandle.FromIntPtr(user).Target as ProfileRegistry;

        private static void StateTrampoline(ulong handle, uint id, int state, IntPtr user) =>
            Raise(user, me => me.StateChanged, new ProfileStateEventArgs(id, (ProfileState)state));

        private static void ErrorTrampoline(ulong handle, uint id, int error, IntPtr user) =>
            Raise(user, me => me.ErrorOccurred, new ProfileErrorEventArgs(id, (Code)error));

        /// <summary>Raises an event of the registry on the service's thread; a handler's
        /// exception is reported, never thrown into native code.</summary>
        private static void Raise<T>(IntPtr user, Func<ProfileRegistry, EventHandler<T>> handlers, T args)
        {
            try
            {
                var me = From(user);
                var handler = me == null ? null : handlers(me);
                if (handler != null) handler(me, args);
            }
            catch (Exception e)
            {
                Console.Error.WriteLine("LanScape.Sip: a ProfileRegistry event handler threw: " + e);
            }
        }
    }

    /// <summary>A handle of one profile; registered while enabled through it. Dispose releases it.</summary>
    public sealed class Profile : IDisposable
    {
        private readonly ProfileHandle profile = new ProfileHandle();

        internal Profile(uint id, ulong handle)
        {
            Id = id;
            profile.Set(handle);
        }

        public uint Id { get; private set; }

        public void Enable() => SipException.Check(profile.Use(Native.SipProfileEnable));

        public void Disable() => SipException.Check(profile.Use(Native.SipProfileDisable));

        /// <summary>The state now; reflects every event already raised.</summary>
        public ProfileState State
        {
            get
            {
                int state = 0;
                SipException.Check(profile.Use(h => Native.SipProfileGetState(h, out state)));
                return (ProfileState)state;
            }
        }

        public void Dispose() => profile.Dispose();
    }
}
